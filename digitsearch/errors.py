"""The one exception a user can fix.

Library code raises UserError with a single line that names the problem and the fix;
the CLI prints that line and exits with code 2, never a traceback.
"""


class UserError(Exception):
    """Bad input from the user: a message meant to be read, not debugged."""
