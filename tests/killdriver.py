"""Kill a search's driver at the worst moment: within a second of a trial's end.

A trial's line reaches finished.txt (the ledger) at once, but Tune snapshots its experiment
state (trials, searcher) at most once a second: a SIGKILL in between leaves a snapshot that
still has the trial running while the ledger and the Optuna study have it finished.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ledger_lines(folder: Path) -> list[str]:
    path = folder / "finished.txt"
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def run_and_kill_after_trial_end(args: list[str], folder: Path, log: Path, delay: float = 0.3,
                                 timeout: float = 240, snapshot_seconds: float | None = None) -> tuple[int, int]:
    """Start `digitsearch <args>` and SIGKILL it (by pid) `delay` s after a trial's line is
    appended to the ledger. (return code, ledger lines at the kill); a driver that ends first
    is left to finish (its code is returned). `snapshot_seconds`: how often Tune snapshots its
    state in the driver (TUNE_GLOBAL_CHECKPOINT_S; a search's own is 1 s): a longer period makes
    the kill land before the next snapshot nearly always, where a second left it to chance."""
    before = len(ledger_lines(folder))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if snapshot_seconds is not None:
        env["TUNE_GLOBAL_CHECKPOINT_S"] = str(snapshot_seconds)
    with open(log, "a") as out:
        driver = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args], stdout=out,
                                  stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        try:
            while driver.poll() is None and time.monotonic() < deadline:
                if len(ledger_lines(folder)) > before:
                    time.sleep(delay)
                    os.kill(driver.pid, signal.SIGKILL)
                    break
                time.sleep(0.05)
            driver.wait(60)
        finally:
            if driver.poll() is None:
                os.kill(driver.pid, signal.SIGKILL)
                driver.wait(30)
    return driver.returncode, len(ledger_lines(folder))

