"""How many epochs (and ensemble members) fit in the time given: `best --retrain --time-limit`,
the retrain of `tune --time-limit --retrain`, and the bench's fixed-recipe baseline.

What an epoch costs depends on the net and on this machine, so it is measured, not guessed:
before training, a throwaway copy of each member's net trains on a few batches of the real
data (a second or two in all) and the cost of one full epoch follows by proportion. Every
member then gets the same number of epochs, as many as fit beside the tests and the writes;
when fewer each would fit than the search trained for (member_epochs), the lowest-ranked
members go. The learning-rate schedule is planned over the epochs it is given
(core.engine.fit), so fewer epochs still anneal fully.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from digitsearch.core import engine
from digitsearch.core.config import TrainSettings
from digitsearch.core.timebudget import Deadline, shown
from digitsearch.errors import UserError

MIN_EPOCHS = 3  # fewer epochs per member than this and one member more is worth less than its epochs
# the longest timed chunk per member, after one warm-up batch: 1 % of the time there is, 0.25-3 s.
# A chunk of a quarter second read a 10-minute retrain's epochs 45 % too slow on MNIST-10k
# (measured beside the search's Ray still shutting down), which left 2 of its 6 minutes unused
CALIBRATION_SHARE, CALIBRATION_SECONDS, MAX_CALIBRATION_SECONDS = 0.01, 0.25, 3.0
MAX_CALIBRATION_BATCHES = 64
# what comes after training besides the test predictions: model.pt, metrics.json, predictions,
# the confusion matrix and TensorBoard's pictures (matplotlib's figures take seconds on a busy
# CPU); an export traces the whole net again (ONNX's dynamo exporter takes seconds even for a small net)
WRITE_SECONDS = 6.0
EXPORT_SECONDS = {"torchscript": 3.0, "onnx": 12.0}
SAFETY = 1.05  # measured costs run a little fast (warm caches); the Guard below covers a slower machine
INFERENCE_SHARE = 0.5  # a test forward pass costs about this share of a training step (no backward)


@dataclass(frozen=True)
class Cost:
    """One member's measured costs, in seconds."""

    epoch: float  # one training epoch over train+val
    test: float  # predicting the test split on every view


@dataclass(frozen=True)
class Budget:
    members: int
    epochs: int
    seconds: float  # the whole retrain from now on, as estimated
    left: float  # what the deadline left when planned


def plan_epochs(costs: Sequence[Cost], seconds: float, min_epochs: int = MIN_EPOCHS,
                fixed: float = 0.0) -> Budget:
    """As many members (best first) as get `min_epochs` each within `seconds`, all on the same
    epochs, as many as fit; at least one member. `fixed`: what the run costs whatever it trains
    (the writes). One epoch of the best member that does not fit is a UserError."""
    for count in range(len(costs), 0, -1):
        chosen = costs[:count]
        per_epoch = sum(cost.epoch for cost in chosen)
        after = fixed + sum(cost.test for cost in chosen)
        epochs = int((seconds - after) // per_epoch) if seconds > after else 0
        if epochs >= min_epochs or (count == 1 and epochs >= 1):
            return Budget(count, epochs, epochs * per_epoch + after, seconds)
    need = costs[0].epoch + costs[0].test + fixed
    raise UserError(f"--time-limit leaves {shown(max(seconds, 0))} for the retrain, but one epoch of the best "
                    f"trial, its tests and the writes take about {shown(need)} on this machine; give it more time")


# a member is added only while each gets this many times the search's --max-epochs: one-cycle nets
# keep gaining well past the epochs the search compared them over. The recipe net alone on full
# Fashion-MNIST made 93.74 / 94.21 / 94.59 % test after 9 / 15 / 23 epochs, while an ensemble of
# two 15-epoch members made 94.26 %, no more than its first member's 94.21 (results/README.md)
MEMBER_EPOCHS_PER_SEARCH_EPOCH = 2


def member_epochs(search_epochs: int) -> int:
    """The fewest epochs a retrain gives each ensemble member before it adds one more: twice the
    epochs the search compared the configs over (its --max-epochs), at least MIN_EPOCHS. Where
    fewer would fit, one net trained longer is worth more than two trained short."""
    return max(MIN_EPOCHS, MEMBER_EPOCHS_PER_SEARCH_EPOCH * int(search_epochs))


def plan_line(budget: Budget, asked: int, min_epochs: int = MIN_EPOCHS) -> str:
    """retraining 2 members for 17 epochs each, about 5m10s of the 6m left"""
    who = f"{budget.members} members" if budget.members > 1 else "1 member" if asked > 1 else "the model"
    each = " each" if budget.members > 1 else ""
    dropped = (f" ({asked} asked: {min_epochs} epochs each would not fit)" if budget.members < asked else "")
    return (f"retraining {who} for {budget.epochs} epoch{'s' * (budget.epochs != 1)}{each}, "
            f"about {shown(budget.seconds)} of the {shown(budget.left)} left{dropped}")


def calibration_seconds(time_left: float | None) -> float:
    """How long to time each member's batches: 1 % of the time left, within 0.25-3 s."""
    if time_left is None:
        return CALIBRATION_SECONDS
    return min(MAX_CALIBRATION_SECONDS, max(CALIBRATION_SECONDS, CALIBRATION_SHARE * time_left))


def measure(build: Callable[[], nn.Module], train: engine.Tensors, settings: TrainSettings, test_examples: int,
            views: int, seed: int = 0, seconds: float = CALIBRATION_SECONDS) -> Cost:
    """A member's costs, timed on a throwaway net (`build()`) of its config: chunks of the data
    doubling until one takes `seconds` (calibration_seconds); the quickest per example counts (a slow chunk
    is more often a hiccup than the net). The global random state is left as it was, so the real
    training is the same with or without a time limit."""
    device = train.x.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        model = build()
        batch = max(2, settings.batch_size)
        _fit_on(model, train, settings, batch, seed)  # warm-up: allocations, cudnn's algorithm search
        examples, per_example = batch, []
        while True:
            examples = min(len(train), examples)
            took = _fit_on(model, train, settings, examples, seed)
            per_example.append(took / examples)
            enough = took >= seconds or examples >= len(train)
            if enough or examples >= MAX_CALIBRATION_BATCHES * batch:
                break
            examples *= 2
    each = SAFETY * min(per_example)
    return Cost(epoch=each * len(train), test=each * INFERENCE_SHARE * test_examples * views)


def _fit_on(model: nn.Module, train: engine.Tensors, settings: TrainSettings, examples: int, seed: int) -> float:
    """Seconds one epoch over the first `examples` takes (fit ends in a host sync: the time is real)."""
    part = engine.Tensors(train.x[:examples], train.y[:examples], train.task)
    start = time.perf_counter()
    engine.fit(model, part, settings, 1, seed=seed)
    return time.perf_counter() - start


def after_training(exports: Sequence[str]) -> float:
    """Seconds the writes after training take, besides the test predictions."""
    return WRITE_SECONDS + sum(EXPORT_SECONDS.get(fmt, 0.0) for fmt in exports)


RECENT_EPOCHS = 3  # a re-plan goes by the median of the last 3: one slow epoch alone does not shorten a run

class Guard:
    """Keeps a planned run within its deadline when this machine turns out slower than measured
    (another job started beside it): a member that no longer fits is left out, and as a last
    resort a member stops at the end of an epoch (its learning rate then has not annealed fully).
    Member k (from 0) costs costs[k]; how long the last one really took, against its measured
    cost, scales the estimates that follow. It reads the time only through its deadline (and
    that deadline's clock), so a run can be planned and guarded on a clock a test moves.
    """

    def __init__(self, deadline: Deadline, costs: Sequence[Cost], fixed: float):
        self.deadline, self.costs, self.fixed = deadline, list(costs), fixed
        self.slowdown = 1.0
        self.tests = 0.0  # the test predictions of the members trained so far

    def epochs_for_rest(self, k: int, count: int) -> int:
        """Epochs each of members k..count-1 gets when they share the time left equally, at the
        pace measured so far: more than planned when the machine ran faster, fewer when slower.
        What comes after the training is reckoned as `_after` does (the writes unscaled), so
        that the guard's stop after an epoch agrees with this plan."""
        rest = self.costs[k:count]
        after = self.slowdown * (self.tests + sum(cost.test for cost in rest)) + self.fixed
        per_epoch = self.slowdown * sum(cost.epoch for cost in rest)
        return max(0, int((self.deadline.left() - after) // per_epoch)) if per_epoch > 0 else 0

    def member_fits(self, k: int, epochs: int) -> bool:
        return self.deadline.fits(self._after(k) + self.slowdown * epochs * self.costs[k].epoch)

    def another_epoch_fits(self, k: int, last_epoch_seconds: float) -> bool:
        """After an epoch of member k that took `last_epoch_seconds`: whether one more still ends in time."""
        return self.epochs_that_fit(k, last_epoch_seconds) >= 1

    def epochs_that_fit(self, k: int, epoch_seconds: float) -> int:
        """How many more epochs of member k, `epoch_seconds` each, still end in time. The tests
        after them run at the pace of now when the machine has slowed down since the last member
        (on a VM losing a third of its CPU, a 30-minute run's last member went from 9-second
        epochs to 14-second ones, and the run ended 35 s late)."""
        if epoch_seconds <= 0:
            return 0
        cost = self.costs[k].epoch
        now = epoch_seconds / cost if cost > 0 else self.slowdown
        return max(0, int((self.deadline.left() - self._after(k, max(self.slowdown, now))) // epoch_seconds))

    def epochs_in_all(self, k: int, history: list[dict], planned: int) -> int:
        """The epochs member k can have in all, after those in `history`, at the pace of its last
        few (their median, the first epoch left out): `planned`, or fewer when the rest would end
        late. Its schedule is then refitted into them (engine.fit) rather than cut before it
        anneals: mnist10k-30m-h's last member, re-planned to 154 epochs on the pace of the first
        two, ran slower and was stopped after 120."""
        timed = history[1:]  # the first epoch pays for warming up: it would shorten the run for nothing
        if len(timed) < RECENT_EPOCHS:
            return planned  # too few epochs to tell the pace by (the stop after an epoch still guards)
        pace = sorted(epoch["epoch_seconds"] for epoch in timed[-RECENT_EPOCHS:])[RECENT_EPOCHS // 2]
        return min(planned, len(history) + self.epochs_that_fit(k, pace))

    def out_of_time_now(self, k: int) -> bool:
        """Whether member k must stop training now, mid-epoch, for its tests and the writes to end
        in time: the last resort when one epoch runs many times slower than those before it (a CI
        machine once stalled a 0.3-second epoch for 34 s, and a 90-s run ended 18 s late)."""
        return not self.deadline.fits(self._after(k))

    def trained(self, k: int, history: list[dict]) -> None:
        cost = self.costs[k]
        if history and cost.epoch > 0:
            self.slowdown = sum(epoch["epoch_seconds"] for epoch in history) / len(history) / cost.epoch
        self.tests += cost.test

    def _after(self, k: int, pace: float | None = None) -> float:
        """What must still fit after member k's training: the tests of every member so far (as slow as
        the training ran, or at `pace`), and the writes (their allowance has its margin already)."""
        return (pace or self.slowdown) * (self.tests + self.costs[k].test) + self.fixed
