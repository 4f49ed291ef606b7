"""`digitsearch ray up|down|status`: one local Ray kept up between commands, for many small
searches in a row (search.local_ray says what it saves and how)."""
from __future__ import annotations

import typer

from digitsearch.cli.app import app

ray_app = typer.Typer(
    help="Keep one local Ray up between commands: every `tune` without --address joins it instead of starting "
         "its own (saves Ray's start-up, about 3 s a command). `ray up`, then `ray down` when done.",
    no_args_is_help=True,
)
app.add_typer(ray_app, name="ray")


@ray_app.command()
def up():
    """Start a local Ray that outlives this command (a driver needs its token, kept in a file only you can read)."""
    from digitsearch.search import local_ray

    local_ray.up(typer.echo)


@ray_app.command()
def down():
    """Stop the local Ray `ray up` started."""
    from digitsearch.search import local_ray

    local_ray.down(typer.echo)


@ray_app.command()
def status():
    """Say whether a local Ray is kept up, and where."""
    from digitsearch.search import local_ray
    from digitsearch.store import kept_ray

    kept = local_ray.kept_up()
    typer.echo(f"ray: up at {kept.address} (state: {kept_ray.state_file()})" if kept else "ray: none kept up")
