"""The Typer app every command registers on, and the one rule for errors.

Bad input ends in one line on stderr, `error: ...`, and exit code 2: a UserError from the
library (the problem and its fix), or Typer's own usage errors (an unknown option, a value out
of the range `--help` shows). Both are turned into that line here, in the app's group, so the
entry point, `python -m digitsearch.cli` and in-process runners (tests) behave the same.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from digitsearch.errors import UserError

USAGE_EXIT = 2  # bad input, whoever caught it (click's own convention)
# `digitsearch --help` lists the everyday commands first, in the order a search goes
ORDER = ("tune", "best", "predict", "report", "dashboard", "spaces", "portfolio", "datasets", "models", "ray", "submit",
         "cluster", "bench")


class OneLineErrors(TyperGroup):
    """A TyperGroup whose errors are one line: UserError and Typer's usage errors alike."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: ORDER.index(name) if name in ORDER else len(ORDER))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra: Any):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UserError as err:
            typer.echo(f"error: {err}", err=True)
            code = USAGE_EXIT
        except TyperException as err:
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            if message:  # empty after `digitsearch` alone, whose help Typer has just printed
                context = getattr(err, "ctx", None)
                where = context.command_path if context is not None else "digitsearch"
                typer.echo(f"error: {message} (see `{where} --help`)", err=True)
            code = getattr(err, "exit_code", USAGE_EXIT)
        except typer.Abort as err:  # click's word for Ctrl-C, and for an EOFError from anywhere
            cause = err.__context__
            # no command reads the terminal: an EOFError is a file that ended early (CI once saw
            # a bare "aborted" for an unpickled file a killed driver had left empty)
            typer.echo(f"error: a file ended early (EOFError: {cause})" if isinstance(cause, EOFError) else "aborted",
                       err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
)



def _version(asked: bool) -> None:
    if asked:
        from digitsearch import __version__

        typer.echo(f"digitsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                                help="Print the version and exit.")] = False) -> None:
    """Hyperparameter and architecture search for MNIST-like image classifiers (Ray Tune + Optuna + ASHA)."""


Results = Annotated[Path, typer.Option(help="Folder holding the experiments.")]
Name = Annotated[Optional[str], typer.Option(help="Experiment name (default: the latest in --results).")]
RESULTS = Path("results")


def main() -> None:
    """The `digitsearch` entry point."""
    app(prog_name="digitsearch")
