"""`python -m digitsearch.cli ...`: how Ray Jobs and the bench start the command."""
from digitsearch.cli import main

main()
