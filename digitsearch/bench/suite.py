"""`digitsearch bench`: how much of the machine a search turns into training, measured in one run.

1. Trial efficiency: images/s of the Keras "simple MNIST convnet" inside a Tune trial vs the
   same model, batch and threads in a bare PyTorch loop (core.engine.train_epoch, no Ray).
2. Search overhead: a search's wall time vs the sum of its trials' own time / concurrency,
   and the fixed cost per trial: how long a slot idles between two trials (from the trials'
   own clocks; "not measurable" when no trial followed another).
   Then `make demo`'s search vs a bare Optuna + PyTorch loop over the same configs and epochs
   (bench.bare_loop), both timed as whole commands.
3. Scheduler value: ASHA + TPE vs FIFO + random search, same trials: best val_acc, epochs.
4. Start-up: `digitsearch tune` start to its first trial result, and the peak memory (PSS) of
   the whole process tree during a 2-trial search, with the largest processes at the peak; then
   the same on a Ray `digitsearch ray up` kept (the first command after it and a later one).

Every number comes from this run; the targets are the issue's. Results go to
results/bench/<host>-<date>.json and .md (a second run on the same day replaces them).
"""
from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

from digitsearch.bench import profile as bench_profile
from digitsearch.bench.measure import demo_ratio, efficiency, overhead, scheduler_value
from digitsearch.bench.plan import TARGETS, full_plan, quick_plan, smoke_plan
from digitsearch.bench.report import machine, write
from digitsearch.bench.startup import kept_up_startup, profile_startup, startup


def run(quick: bool, out: Path, shared_mnist: str | None, echo: Callable[[str], None] = print,
        smoke: bool = False, profile: bool = False) -> Path:
    plan = smoke_plan() if smoke else quick_plan(shared_mnist) if quick else full_plan(shared_mnist)
    if profile:
        bench_profile.py_spy()  # missing: one line now, not after the whole bench
    work = Path(tempfile.mkdtemp(prefix="digitsearch-bench-"))
    began = time.perf_counter()
    try:
        report = {"host": socket.gethostname(), "date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick,
                  "machine": machine(), "plan": plan.__dict__, "targets": TARGETS}
        report["startup"] = startup(work, plan, echo)  # first: a cold machine, nothing else running
        if plan.kept_up:
            report["kept_up"] = kept_up_startup(work, plan, echo)
        report["efficiency"] = efficiency(work, plan, echo)
        report["overhead"] = overhead(work, plan, echo)
        report["demo"] = demo_ratio(work, plan, echo)
        report["scheduler"] = scheduler_value(work, plan, echo)
        report["bench_seconds"] = round(time.perf_counter() - began, 1)
        written = write(report, out, echo)
        if profile:  # after the timed part: py-spy's sampling slows what it watches
            profile_startup(work, plan, written.with_suffix(""), echo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written
