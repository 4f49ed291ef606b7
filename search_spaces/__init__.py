# Marker only: lets the built-in search space YAML files ship in the wheel as package digitsearch.search_spaces.
