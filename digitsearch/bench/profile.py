"""`digitsearch bench --profile`: where the start-up's seconds go, from py-spy.

py-spy samples the start-up search (`digitsearch tune`, 2 trials of 1 epoch) and its Ray
processes 50 times a second, idle waits included, so each frame's samples are wall seconds.
The summary keeps the two processes a user waits on: the driver's main thread, and the trial
workers (Ray actors running `train_trial`), each as the frames that held the most time.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from digitsearch.errors import UserError

RATE = 50  # samples per second
# the frames worth a row: this project's functions, the imports of the big libraries, and Ray's
# milestones; the rest (Ray's and typer's wrappers, Python's import machinery) only repeat them
_KEPT = re.compile(r"\(digitsearch/|"
                   r"^<module> \((torch|ray|sklearn|pandas|torchvision|optuna|torch/_dynamo)/__init__\.py\)|"
                   r"^(init|wait) \(ray/_private/worker\.py\)|^Tuner\.fit |^FunctionActorManager\.load_actor_class ")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise UserError("--profile needs py-spy: pip install py-spy (`make install` includes it)")
    return found


# the profiled search takes about 15 s; py-spy once waited on after it had ended (a Ray trial worker
# left in a ptrace stop once its raylet was gone, 2026-12-05): past this, py-spy is told to stop
# (SIGINT: it writes what it sampled, detaches, and the worker exits)
RECORD_TIMEOUT_S = 180


def record(command: list[str], raw: Path) -> None:
    """py-spy record of `command` and every process it starts, as raw collapsed stacks."""
    spy = subprocess.Popen([py_spy(), "record", "--subprocesses", "--idle", "-r", str(RATE), "--format", "raw",
                            "-o", str(raw), "--", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = spy.communicate(timeout=RECORD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        spy.send_signal(signal.SIGINT)
        try:
            _, stderr = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.communicate()
            raise UserError(f"py-spy did not end {RECORD_TIMEOUT_S} s after the start-up search began, nor on "
                            f"SIGINT: no profile written") from None
    if not raw.is_file() or (spy.returncode != 0 and not raw.stat().st_size):
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"py-spy could not profile the start-up search ({last}); it needs ptrace permission")


def _kind(frames: list[str]) -> str | None:
    """The driver's main thread, a trial worker's, or neither (Ray's daemons, idle threads)."""
    own = frames[[i for i, f in enumerate(frames) if f.startswith("process ")][-1] + 1:]
    if own and own[0].startswith("_run_module_as_main") and any(f.startswith("tune (digitsearch/cli/") for f in own):
        return "driver"
    if any("train_trial (digitsearch" in f or "load_actor_class" in f for f in own):
        return "trial worker"
    return None


def summarise(raw: Path, top: int = 16) -> dict[str, list[tuple[str, float]]]:
    """{kind: [(frame, seconds)]}: each kind's frames by inclusive wall time, most first."""
    totals: dict[str, Counter] = {"driver": Counter(), "trial worker": Counter()}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        kind = _kind(frames)
        if kind is None:
            continue
        seen = {f for f in (re.sub(r":\d+\)", ")", f) for f in frames) if _KEPT.search(f)}
        for frame in seen:
            totals[kind][frame] += int(count)
    return {kind: [(frame, n / RATE) for frame, n in counter.most_common(top)] for kind, counter in totals.items()}


def markdown(summary: dict[str, list[tuple[str, float]]], command: str) -> str:
    lines = ["# Where the start-up's time goes (py-spy)", "",
             f"`{command}` sampled by py-spy at {RATE} Hz with idle waits, so seconds are wall time; "
             "a frame's time includes what it calls (inclusive). Trial workers: both workers summed.", ""]
    for kind, frames in summary.items():
        lines += [f"## {kind}", ""]
        if not frames:  # py-spy finds a new process by polling: a short trial can end first
            lines += ["No samples: py-spy attached to the trial workers too late to see them.", ""]
            continue
        lines += ["| seconds | frame |", "|---|---|"]
        lines += [f"| {seconds:.1f} | `{frame}` |" for frame, seconds in frames]
        lines.append("")
    return "\n".join(lines)
