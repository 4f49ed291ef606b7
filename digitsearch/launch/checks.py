"""What both cluster launch files check and share: the search's words after `--`, counts,
ports, the quoted `digitsearch tune` line, and writing the file without overwriting one."""
from __future__ import annotations

import shlex
from pathlib import Path

from digitsearch.errors import UserError

DEFAULT_PORT = 6379  # Ray's GCS port
DEFAULT_DASHBOARD_PORT = 8265
RAY_CLIENT_PORT = 10001
RAY_RESERVED_PORTS = (10001, 19999)  # `ray start`'s default client server port and worker port range


def check_tune_args(args: list[str] | tuple[str, ...]) -> list[str]:
    """The words after `--`: a `digitsearch tune` command line without --address (the launcher sets it)."""
    args = list(args)
    if not args:
        raise UserError("no search command: end with `-- tune --space cnn ...` "
                        "(the `digitsearch tune` arguments to run on the cluster)")
    if args[0].startswith("-"):
        raise UserError(f"unknown option {args[0]!r} (see --help); the search's own options go after `-- tune`")
    if args[0] != "tune":
        raise UserError(f"the command after `--` must start with `tune` (got {args[0]!r}): only a search runs "
                        "on the cluster, e.g. `-- tune --space cnn --trials 50`")
    if any(arg == "--address" or arg.startswith("--address=") for arg in args[1:]):
        raise UserError("leave --address out of the tune arguments: the launcher points the search at the "
                        "cluster's head itself")
    return args


def check_count(value: int, option: str, minimum: int) -> int:
    if value < minimum:
        raise UserError(f"{option} must be at least {minimum} (got {value})")
    return value


def check_port(value: int, option: str) -> int:
    if not 1 <= value <= 65535:
        raise UserError(f"{option} must be a port number from 1 to 65535 (got {value})")
    if RAY_RESERVED_PORTS[0] <= value <= RAY_RESERVED_PORTS[1]:
        raise UserError(f"{option} {value} is among the ports Ray keeps for itself "
                        f"({RAY_RESERVED_PORTS[0]}-{RAY_RESERVED_PORTS[1]}: client server and workers); choose another")
    return value


def tune_command(args: list[str], address: str | None = None) -> str:
    """`digitsearch tune ...` for a shell, every argument quoted; `address` is appended as
    given (a "$variable" the script sets)."""
    line = shlex.join(["digitsearch", *args])
    return f"{line} --address {address}" if address else line


def write(text: str, output: Path) -> Path:
    """Write a generated file; an existing file is never overwritten."""
    if output.exists():
        raise UserError(f"{output} already exists; remove it or choose another --output")
    if not output.parent.exists():
        raise UserError(f"folder {output.parent} does not exist; create it or choose another --output")
    output.write_text(text)
    return output
