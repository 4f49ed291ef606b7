"""Time limits: `--time-limit 90s | 30m | 1h30m` parsed once, and the deadline every stage reads.

A user thinks in time ("the best model I can get in 30 minutes"); the search, the trials and
the retrain all plan against one Deadline. It is wall-clock time (time.time()), not a
monotonic clock, because trial processes on other machines of a cluster read it too.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

from digitsearch.errors import UserError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)", re.IGNORECASE)
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}
EXAMPLES = "e.g. 90s, 30m, 1h or 1h30m"


def parse_duration(text: str | float | int) -> float:
    """'90s' -> 90.0, '30m' -> 1800.0, '1h30m' -> 5400.0; a bare number is seconds.
    Anything else, or a duration of zero, is a UserError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", raw):
            seconds = float(raw)
        elif raw and re.fullmatch(rf"(?:{_PART.pattern}\s*)+", raw, re.IGNORECASE):
            seconds = sum(float(n) * _UNIT[unit.lower()] for n, unit in _PART.findall(raw))
        else:
            raise UserError(f"--time-limit {text!r} is not a duration; write one {EXAMPLES}")
    if not seconds > 0:
        raise UserError(f"--time-limit must be above zero ({EXAMPLES}), got {text!r}")
    return seconds


def shown(seconds: float) -> str:
    """1830.0 -> '30m30s', 95.0 -> '1m35s', 42.0 -> '42s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] * bool(hours) + [f"{minutes}m"] * bool(minutes) + [f"{secs}s"] * bool(secs or not seconds)
    return "".join(parts)


def since_process_start() -> float:
    """Seconds this process has run: a command's time limit counts from when the user pressed
    enter, so Python's start and the imports before the first line of ours count too."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


# where the time is read from, in seconds: time.time (a Deadline, the deadline searcher) or
# time.perf_counter (an epoch's length) in every run, a clock the test moves in the tests
Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """A moment in wall-clock time (time.time()) that work must be done by. `clock` is where the
    time is read: time.time() for every run (a trial process on another machine of a cluster reads
    `at` against its own wall clock); a test gives one it moves by hand. Two deadlines at the same
    moment are equal whatever they read the time from."""

    at: float
    clock: Clock = field(default=time.time, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.time) -> "Deadline":
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        """Seconds until the deadline; negative once it has passed."""
        return self.at - self.clock()

    def fits(self, seconds: float) -> bool:
        """Whether work taking `seconds` ends before the deadline."""
        return seconds <= self.left()
