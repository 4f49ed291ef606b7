"""When a time-limited search with a retrain after it stops searching (`tune --time-limit T --retrain`).

The search may end anywhere between two moments the command fixes: `earliest` (the least a
search gets, so the starting points and a first batch of sampled configs are measured) and the
trials' own deadline (the most it gets; search.deadline keeps that one). It never ends while a
starting point that has started is short of max_epochs, nor before a whole window of results
has come in. From then on the planner compares, after every epoch any trial reports, two
rates in validation accuracy per minute:
  - the search's: what a config other than the leader at the start of the last window gained
    over that leader within the window (a leader that only trained further gained nothing by
    searching: the final training gives that too, on more data);
  - the final training's: the leader's own curve, its best val_acc gained per minute of its
    last epochs (a lower bound: the final training also gets a longer schedule and members).
It stops searching at the first result where the search's rate falls below the training's,
with a gain below one validation image counted as none. It stops the trials (each after the
epoch it is in, its result kept, as ASHA's stops do) and tells the searcher to start no more;
`why` says what it saw, and `added()` what the search added over its best starting point at
equal epochs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ray.tune.stopper import Stopper

from digitsearch.core.timebudget import Clock, shown
from digitsearch.store.leaderboard import match_starting_points

# the window the search's gain is read over: at least this long, else this share of the search so far
# (counted from its first result)
MIN_WINDOW_S = 60.0
WINDOW_SHARE = 1 / 3
EPOCH_KEY, METRIC, SECONDS_KEY = "epoch", "val_acc", "time_this_iter_s"


@dataclass
class _Curve:
    """One trial's epochs: val_acc and seconds per epoch, and which starting point it is (0: sampled)."""

    start: int = 0
    acc: dict[int, float] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)

    def best_by(self, epoch: int) -> float:
        return max((v for e, v in self.acc.items() if e <= epoch), default=0.0)


class SearchPlanner(Stopper):
    """A Tune stopper that ends the search once more search gains less than more final training."""

    def __init__(self, earliest: float | None, val_examples: int, starting_points: list[dict], max_epochs: int,
                 clock: Clock = time.time):
        self.earliest = earliest
        self.max_epochs = max_epochs
        self.one_image = 1.0 / max(1, val_examples)
        self.points = [dict(p) for p in starting_points]
        self.clock = clock
        self.curves: dict[str, _Curve] = {}
        self.leads: list[tuple[float, float, str]] = []  # (time, val_acc, trial id) at each change of leader
        self.why: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        self._observe(trial_id, result)
        if self.why is None:
            self.why = self._decide(self.clock())
        return self.why is not None

    def stop_all(self) -> bool:
        return False  # each trial stops after its own next epoch: no epoch is lost half-way

    @property
    def stopped(self) -> bool:
        return self.why is not None

    def intent(self) -> str:
        """What the planner means to do now, for the live view."""
        if self.why:
            return "final training next: the search stopped gaining"
        if self.earliest is None:
            return "search until its time or trials run out"
        left = self.earliest - self.clock()
        return f"search (at least {shown(left)} more)" if left > 0 else "search while it gains more than training"

    def _observe(self, trial_id: str, result: dict) -> None:
        epoch, acc = result.get(EPOCH_KEY), result.get(METRIC)
        if not isinstance(epoch, int) or epoch < 1 or not isinstance(acc, (int, float)):
            return
        if result.get("note") and not acc:  # a trial that could not train (over budget, diverged): no curve
            return
        curve = self.curves.get(trial_id)
        if curve is None:
            curve = self.curves[trial_id] = _Curve(self._starting_point(trial_id, result.get("config") or {}))
        curve.acc[epoch] = float(acc)
        curve.seconds[epoch] = float(result.get(SECONDS_KEY) or 0.0)
        if not self.leads or acc > self.leads[-1][1]:
            self.leads.append((self.clock(), float(acc), trial_id))

    def _starting_point(self, trial_id: str, config: dict) -> int:
        taken = {c.start for c in self.curves.values()}
        for k, point in enumerate(self.points, start=1):
            if k not in taken and match_starting_points({trial_id: config}, [point]):
                return k
        return 0

    def _decide(self, now: float) -> str | None:
        if self.earliest is None or now < self.earliest or not self.leads or self._starting_points_training():
            return None
        searched = now - self.leads[0][0]  # from the first result: Ray's start and data loading are no search
        window = max(MIN_WINDOW_S, WINDOW_SHARE * searched)
        if searched < window:
            return None  # not a whole window of results yet: no gain to read
        then_acc, then_leader = self._leader_at(now - window)
        _, acc, leader = self.leads[-1]
        found = acc - then_acc if leader != then_leader else 0.0
        search_rate = found / (window / 60) if found >= self.one_image - 1e-12 else 0.0
        training_rate = self.training_rate(leader)
        if search_rate > 0 and search_rate >= training_rate:
            return None
        return (f"in the last {shown(window)} the search {self._found_text(found, then_leader, leader)}; "
                f"the leader ({leader}, val_acc {acc:.4f}) gains {training_rate * 100:.2f} points a minute by "
                f"training on: the rest of the time goes to final training")

    def _starting_points_training(self) -> bool:
        """Whether a starting point has started and not yet reached max_epochs: the hand-made nets
        are measured in full before the search is judged (the recipe starts slowly and ends
        strongest), as ASHA trains them in full (search.schedulers)."""
        return any(c.start and max(c.acc) < self.max_epochs for c in self.curves.values())

    def _leader_at(self, moment: float) -> tuple[float, str]:
        before = [(acc, trial) for at, acc, trial in self.leads if at <= moment]
        return before[-1] if before else (0.0, "")

    def _found_text(self, found: float, then_leader: str, leader: str) -> str:
        if leader == then_leader or found < self.one_image - 1e-12:
            return "found no config better than its leader by one validation image"
        return f"gained {found * 100:.2f} points ({then_leader} -> {leader})"

    def training_rate(self, trial_id: str) -> float:
        """val_acc the trial's best gained per minute over its last half of epochs (0 with fewer than 2)."""
        curve = self.curves.get(trial_id)
        if curve is None or len(curve.acc) < 2:
            return 0.0
        last = max(curve.acc)
        middle = max(1, last // 2)
        seconds = sum(s for e, s in curve.seconds.items() if middle < e <= last)
        gained = curve.best_by(last) - curve.best_by(middle)
        return gained / (seconds / 60) if seconds > 0 else 0.0

    def added(self) -> str:
        """What the search added over its best starting point at equal epochs, in one sentence."""
        starts = {t: c for t, c in self.curves.items() if c.start}
        sampled = {t: c for t, c in self.curves.items() if not c.start}
        if not starts or not sampled:
            missing = "starting point" if not starts else "sampled config"
            return f"the search trained no {missing}: nothing to compare at equal epochs"
        start_id = max(starts, key=lambda t: max(starts[t].acc.values()))
        found_id = max(sampled, key=lambda t: max(sampled[t].acc.values()))
        epoch = min(max(starts[start_id].acc), max(sampled[found_id].acc))
        mine, theirs = sampled[found_id].best_by(epoch), starts[start_id].best_by(epoch)
        images = round((mine - theirs) / self.one_image)
        verdict = f"added {(mine - theirs) * 100:+.2f} points ({images:+d} validation images)" if images > 0 else \
            f"added nothing ({(mine - theirs) * 100:+.2f} points, {images:+d} validation images)"
        return (f"the search {verdict} over its best starting point (start {starts[start_id].start}, "
                f"{start_id}) at equal epochs ({epoch}): best sampled {found_id} {mine:.4f} vs {theirs:.4f}")
