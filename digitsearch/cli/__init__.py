"""The `digitsearch` command: thin commands, each calls one library function and prints a summary.

One module per command group; each imports only Typer and light option types at module level,
and its heavy work (Ray, torch, pandas) inside the command, so `--help`, `spaces`, `datasets`
and `models --help` start at once. Bad input: one line on stderr, exit code 2 (cli.app).
"""
from digitsearch.cli import (  # noqa: F401  (register)
    bench,
    best,
    cluster,
    listing,
    local_ray,
    portfolio,
    predict,
    tune,
    views,
)
from digitsearch.cli.app import app, main

__all__ = ["app", "main"]
