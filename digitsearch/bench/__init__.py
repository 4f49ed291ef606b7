"""`digitsearch bench`: trial efficiency, search overhead, scheduler value and start-up, measured
in one run with real `digitsearch tune` processes; --profile adds a py-spy summary."""
