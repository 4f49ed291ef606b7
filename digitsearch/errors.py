"""The one exception a user can fix.

Library code raises UserError with a single line that names the problem and the fix;
the CLI prints that line and exits with code 2, never a traceback.
"""


class UserError(Exception):
    """Bad input from the user: a message meant to be read, not debugged."""


def validation_message(problem: dict) -> str:
    """One pydantic error (an item of ValidationError.errors()) in our words: "must be a valid
    integer, not 'big'" (the schemas of training settings and of model kwargs both say it so)."""
    message = problem["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return f"{message}, not {problem['input']!r}"
