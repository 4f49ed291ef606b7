"""A clock for tests of time limits: it stands still until the test moves it, so a plan and its
guard can be checked against simulated epochs of any length, in no time and the same every run."""
from __future__ import annotations

# far from zero, as a wall clock is: a deadline of 0.0 (a resumed search's) lies in its past
START = 1_000_000.0


class FakeClock:
    """Seconds, as time.time() or time.perf_counter() give them; `advance` is the only way on."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, f"a clock does not go back ({seconds} s)"
        self.now += seconds
