"""`digitsearch dashboard`: TensorBoard on 127.0.0.1 over results/ or one experiment.

Over results/ every experiment's trials sit side by side (runs are named
<experiment>/tensorboard/trials/<trial_id>); with --name only that experiment shows.
Bound to the loopback interface: TensorBoard has no authentication.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Callable

from digitsearch.errors import UserError
from digitsearch.store import experiments
from digitsearch.store.layout import TENSORBOARD_DIR

HOST = "127.0.0.1"


def logdir(results: Path, name: str | None) -> Path:
    """results/<name>/tensorboard for one experiment (default: none named: all of results/)."""
    if name is None:
        if not experiments.list_all(results):
            raise UserError(f"no experiments in {results}; run `digitsearch tune` first")
        return results
    board = experiments.resolve(results, name) / TENSORBOARD_DIR
    if not board.is_dir():
        raise UserError(f"{board} does not exist: experiment {name} was run before digitsearch wrote TensorBoard logs")
    return board


def start(folder: Path, port: int):
    """A running TensorBoard (serving from a background thread) and its URL."""
    from tensorboard import program

    board = program.TensorBoard()
    # the plain Python loader: our logs are small, and it prints no start-up notes
    board.configure(logdir=str(folder), host=HOST, port=port, reload_interval=5, load_fast="false")
    try:
        return board, board.launch()
    except program.TensorBoardServerException as err:
        raise UserError(f"TensorBoard could not start on {HOST}:{port}: {err.msg}; pick another --port") from None


def serve(folder: Path, port: int, echo: Callable[[str], None]) -> None:
    """Start TensorBoard, print its URL, serve until Ctrl-C."""
    # Python leaves SIGINT ignored when the parent ignored it (a shell's background job, a
    # pytest-xdist worker): then Ctrl-C or `kill -INT` would never stop the server
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _, url = start(folder, port)
    echo(f"TensorBoard over {folder} at {url} (Ctrl-C stops it)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("stopped")
