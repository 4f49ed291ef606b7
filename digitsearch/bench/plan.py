"""How big each bench measurement is (--quick, --smoke, the full run), and the issue's targets."""
from __future__ import annotations

from dataclasses import dataclass

# issue 16's targets (start-up, overhead, fixed cost, memory, the demo against a bare loop)
TARGETS = {"efficiency": 0.95, "overhead": 1.10, "fixed_cost_s": 0.15, "scheduler_gap": 0.002,
           "scheduler_epochs": 1 / 3, "startup_s": 6.0, "peak_gb": 1.5, "demo_ratio": 1.5}


@dataclass(frozen=True)
class Plan:
    """How big each measurement is: --quick fits them all in a few minutes."""

    dataset: str  # the efficiency, overhead and start-up data
    scheduler_dataset: str
    epochs: int  # epochs of each efficiency run (the first is warm-up, not counted)
    overhead_trials: int  # the overhead search's trials (2 at a time: a handover per trial after the second)
    scheduler_trials: int
    scheduler_epochs: int
    threads: tuple[int, ...] = (1, 2)  # the efficiency runs' torch threads
    demo_trials: int | None = None  # the demo search's --trials and --max-epochs (None: `make demo`'s own)
    demo_epochs: int | None = None
    kept_up: bool = True  # also time the start-up on a Ray `digitsearch ray up` kept


def quick_plan(shared_mnist: str | None) -> Plan:
    # MNIST-10k's 7,200 training images make epochs long enough to time; the digits' 1,293 do not
    data = shared_mnist or "digits"
    return Plan(data, "digits", 2, 6, 4, 4)


def full_plan(shared_mnist: str) -> Plan:
    return Plan(shared_mnist, shared_mnist, 4, 16, 16, 9)


def smoke_plan() -> Plan:
    """The smallest run that still measures everything (the test suite's): every number is real,
    and too small to mean much."""
    return Plan("digits", "digits", 2, 3, 2, 1, threads=(1,), demo_trials=2, demo_epochs=1, kept_up=False)
