"""Kill a search's driver at the worst moment: the driver does it itself, exactly there, with
DIGITSEARCH_FAULT (search.callbacks.faults). Killing it from outside some time after a
trial's line reached the ledger hit the moment only by chance (CI missed it three times)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from digitsearch.search.callbacks.faults import FAULT_VARIABLE

ROOT = Path(__file__).resolve().parents[1]


def ledger_lines(folder: Path) -> list[str]:
    path = folder / "finished.txt"
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def run_with_fault(args: list[str], folder: Path, log: Path, fault: str, timeout: float = 240) -> tuple[int, int]:
    """Run `digitsearch <args>` (its output appended to `log`) with the fault `fault`:
    (return code, the ledger's lines after it). A driver the fault never came to ends normally."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", FAULT_VARIABLE: fault}
    with open(log, "a") as out:
        driver = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT, timeout=timeout)
    return driver.returncode, len(ledger_lines(folder))
