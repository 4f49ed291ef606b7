"""How big each bench measurement is (--quick, --smoke, the full run), and the issue's targets."""
from __future__ import annotations

from dataclasses import dataclass

TARGETS = {"efficiency": 0.95, "overhead": 1.15, "fixed_cost_s": 0.5, "scheduler_gap": 0.002,
           "scheduler_epochs": 1 / 3, "startup_s": 8.0, "peak_gb": 2.5}


@dataclass(frozen=True)
class Plan:
    """How big each measurement is: --quick fits all four in under 3 minutes."""

    dataset: str  # the efficiency, overhead and start-up data
    scheduler_dataset: str
    epochs: int  # epochs of each efficiency run (the first is warm-up, not counted)
    overhead_trials: tuple[int, int]  # the small and the large search
    scheduler_trials: int
    scheduler_epochs: int
    threads: tuple[int, ...] = (1, 2)  # the efficiency runs' torch threads


def quick_plan(shared_mnist: str | None) -> Plan:
    # MNIST-10k's 7,200 training images make epochs long enough to time; the digits' 1,293 do not
    data = shared_mnist or "digits"
    return Plan(data, "digits", 2, (2, 4), 4, 4)


def full_plan(shared_mnist: str) -> Plan:
    return Plan(shared_mnist, shared_mnist, 4, (4, 16), 16, 9)


def smoke_plan() -> Plan:
    """The smallest run that still measures all four (the test suite's): every number is real,
    and too small to mean much."""
    return Plan("digits", "digits", 2, (1, 2), 2, 1, threads=(1,))
