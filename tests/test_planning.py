"""The time-limit planning as pure functions on a clock the test moves (tests/clocks.py): the
retrain's plan and guard around epochs of any simulated length, the searcher that stops starting
trials, the trial's epoch check. No Ray, no subprocess, no sleeping: each test takes milliseconds
to a few tenths of a second, and ends the same way on a busy machine as on an idle one."""
from __future__ import annotations

import pickle
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from clocks import FakeClock
from ray.tune.search import Searcher
from torch import nn

from digitsearch.core import budget, engine
from digitsearch.core.budget import Cost
from digitsearch.core.config import TrainSettings
from digitsearch.core.timebudget import Deadline
from digitsearch.errors import UserError
from digitsearch.final import training
from digitsearch.final.plan import Member, Plan
from digitsearch.search.deadline import DeadlineSearcher
from digitsearch.search.trainable import _out_of_time

LIMIT = 90.0  # seconds: the time-limited runs of test_time_limit, simulated
EPOCH = 0.3  # what an epoch of the bundled digits' recipe net costs, about
STALL = 34.0  # one such epoch once took this long on a busy machine
COST = Cost(epoch=EPOCH, test=1.0)
FIXED = budget.after_training(())  # the writes after training, no export
SEARCH_EPOCHS = 8  # the search's --max-epochs: member_epochs asks twice that of each member

# examples of 4 numbers in batches of 4, plain SGD: a step costs a fraction of a millisecond, so
# the few hundred epochs of a simulated 90-s run take a few tenths of a second
BATCH = 4
SETTINGS = TrainSettings(batch_size=BATCH, optimizer="sgd", momentum=0.0)


def _examples(batches: int) -> engine.Tensors:
    """`batches` batches of SETTINGS' size (a stalled epoch can be cut between two of them)."""
    generator = torch.Generator().manual_seed(0)
    return engine.Tensors(torch.randn(batches * BATCH, 1, 2, 2, generator=generator),
                          torch.tensor([0, 1] * (batches * BATCH // 2)))


class TimedNet(nn.Module):
    """One linear layer whose every training batch moves `clock` on by what that batch costs:
    `epoch_seconds(epoch)` (epoch from 0) shared evenly by the epoch's `batches` batches."""

    def __init__(self, clock: FakeClock, epoch_seconds, batches: int):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.clock, self.epoch_seconds, self.batches, self.seen = clock, epoch_seconds, batches, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(self.epoch_seconds(self.seen // self.batches) / self.batches)
        self.seen += 1
        return self.linear(x.flatten(1))


def stalled_at(epoch: int):
    """Epochs of EPOCH s, but epoch `epoch` (from 0) takes STALL s."""
    return lambda e: STALL if e == epoch else EPOCH


@pytest.fixture(scope="module", autouse=True)
def optimizers_imported():
    """Every torch optimizer imports torch._dynamo when it is first made (a second or more, once
    per process): paid here, where it shows as this file's setup, not in whichever test is first."""
    import torch._dynamo  # noqa: F401


@pytest.fixture(autouse=True)
def quick_steps(monkeypatch):
    """Tiny steps at their quickest: fp32 (bf16 autocast costs more than such a net computes) on
    one thread (on two, a busy machine makes each step wait for the other thread)."""
    monkeypatch.setenv(engine.CPU_BF16_ENV, "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def retrain_alone(epoch_seconds, limit: float = LIMIT,
                  batches: int = 1) -> tuple[FakeClock, Deadline, budget.Budget, list[dict]]:
    """A one-member retrain given `limit` s, as fit_to plans it and as train_members trains it (the
    real plan, guard, hooks and engine.fit), its epochs costing `epoch_seconds(e)`, each in `batches` batches."""
    clock = FakeClock()
    deadline = Deadline.after(limit, clock=clock)
    chosen = budget.plan_epochs([COST], deadline.left(), min_epochs=budget.member_epochs(SEARCH_EPOCHS), fixed=FIXED)
    guard = budget.Guard(deadline, [COST], FIXED)
    history = engine.fit(TimedNet(clock, epoch_seconds, batches), _examples(batches), SETTINGS, chosen.epochs,
                         clock=clock, **training._time_hooks(guard, 0))
    guard.trained(0, history)
    return clock, deadline, chosen, history


def finish(clock: FakeClock, pace: float = 1.0, members: int = 1) -> float:
    """The run's end: each member's test predictions at `pace` times its measured cost, then the writes."""
    clock.advance(members * pace * COST.test)
    clock.advance(FIXED)
    return clock()


# --- a retrain's plan and guard, on simulated epochs -------------------------------------


def test_a_retrain_given_90_seconds_without_a_stall_uses_most_of_them_and_ends_in_time():
    clock, deadline, chosen, history = retrain_alone(lambda epoch: EPOCH)
    assert chosen.epochs == 276  # (90 - 1 - 6) // 0.3
    assert len(history) == chosen.epochs and not any("interrupted" in epoch for epoch in history)
    trained = sum(epoch["epoch_seconds"] for epoch in history)
    assert trained >= 0.8 * LIMIT, trained  # the plan fills the time, it does not hedge half of it away
    assert finish(clock) <= deadline.at


def test_a_retrain_given_90_seconds_with_a_34_second_stall_in_the_middle_ends_in_time():
    middle = 138  # of the 276 epochs planned
    clock, deadline, chosen, history = retrain_alone(stalled_at(middle))
    assert len(history) > middle and history[middle]["epoch_seconds"] == pytest.approx(STALL)
    assert not history[-1].get("interrupted")  # the stall ended with time to spare: no epoch was cut
    assert len(history) < chosen.epochs  # the 34 s came out of the epochs after it
    assert finish(clock) <= deadline.at


def test_a_stall_near_the_end_is_cut_between_two_batches_at_most_one_batch_late():
    """The guard checks between batches whether the tests and the writes still fit, not whether
    the next batch does: a stall that begins 21 s before the limit is cut after its second batch,
    and the run ends within one batch of the stall (8.5 s) of the limit instead of 34 s past it.
    (The retrain of `tune --retrain` gets what the search left: 30 s here, 76 epochs planned.)"""
    late = 30  # starts at 9 s of 30
    clock, deadline, chosen, history = retrain_alone(stalled_at(late), limit=30.0, batches=4)
    assert chosen.epochs == 76 and len(history) == late + 1 and history[-1]["interrupted"]
    assert history[-1]["epoch_seconds"] == pytest.approx(STALL / 2)  # two of its four batches
    assert finish(clock) <= deadline.at + STALL / 4


def test_the_guard_stops_a_run_at_the_epoch_whose_successor_would_end_late():
    guard = budget.Guard(Deadline.after(10.0, clock=FakeClock()), [COST], FIXED)
    assert guard.another_epoch_fits(0, EPOCH)  # 0.3 + 1 + 6 <= 10
    # an epoch 3 times slower than measured: the tests after it will be too, 0.9 + 3 + 6 <= 10
    assert guard.another_epoch_fits(0, 3 * EPOCH)
    assert not guard.another_epoch_fits(0, 1.0)  # 1 + 3.3 + 6 > 10
    assert not guard.out_of_time_now(0)  # 1 + 6 <= 10
    guard.deadline.clock.advance(3.5)
    assert guard.out_of_time_now(0)  # 7 > 6.5


# --- the ensemble's members and epochs under a time limit ---------------------------------


def test_a_plan_for_90_seconds_gives_every_member_the_same_epochs_and_drops_those_below_the_minimum():
    three = [COST] * 3
    plan = budget.plan_epochs(three, LIMIT, min_epochs=budget.member_epochs(SEARCH_EPOCHS), fixed=FIXED)
    assert (plan.members, plan.epochs) == (3, 90)  # (90 - 3 - 6) // 0.9
    assert plan.seconds <= LIMIT
    two = budget.plan_epochs(three, LIMIT, min_epochs=100, fixed=FIXED)
    assert (two.members, two.epochs) == (2, 136)  # 3 members get 90 < 100 each; 2 get (90 - 8) // 0.6
    one = budget.plan_epochs(three, 10.0, min_epochs=budget.member_epochs(SEARCH_EPOCHS), fixed=FIXED)
    assert (one.members, one.epochs) == (1, 10)  # the best always, on fewer epochs than the minimum
    with pytest.raises(UserError, match="one epoch of the best trial"):
        budget.plan_epochs(three, 7.2, fixed=FIXED)  # 0.3 + 1 + 6 > 7.2


def test_members_get_twice_the_search_epochs_before_another_member_is_added():
    assert [budget.member_epochs(n) for n in (1, 2, 8, 40)] == [3, 4, 16, 80]
    three = [COST] * 3
    assert budget.plan_epochs(three, LIMIT, min_epochs=budget.member_epochs(40), fixed=FIXED).members == 3
    assert budget.plan_epochs(three, LIMIT, min_epochs=budget.member_epochs(50), fixed=FIXED).members == 2


def _job(members: int) -> Plan:
    trials = [Member(trial={"trial_id": f"t{k}"}, cfg=SimpleNamespace(train=SETTINGS), epochs=1)
              for k in range(members)]
    return Plan(folder=Path("."), meta={"seed": 0, "max_epochs": SEARCH_EPOCHS}, members=tuple(trials), exports=(),
                out=Path("."))


def test_fit_to_plans_the_ensemble_on_the_time_its_deadline_leaves(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(budget, "measure", lambda *args, **kwargs: COST)  # what calibration would have read
    lines = []
    plan, guard = training.fit_to(Deadline.after(LIMIT, clock=clock), _job(3), SimpleNamespace(test=None),
                                  SimpleNamespace(tensors=None), ("plain",), lines.append)
    assert [member.epochs for member in plan.members] == [90, 90, 90] and guard.deadline.clock is clock
    assert lines == ["retraining 3 members for 90 epochs each, about 1m30s of the 1m30s left"]  # 90 x 0.9 + 9
    clock.advance(75.0)  # the data and the calibration took most of the time: two members go
    plan, _ = training.fit_to(Deadline.after(15.0, clock=clock), _job(3), SimpleNamespace(test=None),
                              SimpleNamespace(tensors=None), ("plain",), lines.append)
    # 3 members would get (15 - 3 - 6) // 0.9 = 6 epochs each, 2 would get 11: fewer than 2 x 8 each
    assert plan.planned == 1 and plan.members[0].epochs == 26  # (15 - 1 - 6) // 0.3
    assert plan.waiting_epochs == 16  # the two others wait: they join if the first leaves them 16 epochs each
    assert lines[-1] == ("retraining 1 member for 26 epochs, about 15s of the 15s left "
                         "(3 asked: 16 epochs each would not fit)")


def test_members_left_waiting_join_when_the_first_trains_faster_than_measured(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(budget, "measure", lambda *args, **kwargs: COST)  # read 4 times too slow, below
    notes = []
    deadline = Deadline.after(15.0, clock=clock)
    job, guard = training.fit_to(deadline, _job(3), SimpleNamespace(test=None), SimpleNamespace(tensors=None),
                                 ("plain",), notes.append)
    assert job.planned == 1

    def timed_train(member, bundle, data, seed, progress=None, on_start=None, time_hooks=None):
        net = TimedNet(clock, lambda epoch: EPOCH / 4, batches=1)
        return training.Trained(net, engine.fit(net, _examples(1), SETTINGS, member.epochs, clock=clock,
                                                **(time_hooks or {})))

    monkeypatch.setattr(training, "train", timed_train)
    monkeypatch.setattr(training, "_kept_after_check", lambda done, *args: done)
    trained = training.train_members(job, None, None, guard, notes.append)
    # the first member's 26 epochs took 1.95 s, not 7.8: the two waiting members fit 16 epochs each
    # and more; they share what is left at that pace: (13.05 - 0.25 * (1 + 2) - 6) // (0.25 * 0.6) = 42
    assert [len(member.history) for member in trained] == [26, 42, 42]
    assert notes[1:] == ["note: the members so far trained faster than measured: members 2, 3 of the 3 asked fit "
                         "after all",
                         "note: member 2 gets 42 epochs instead of the 26 planned: the members so far trained faster "
                         "than measured",
                         "note: member 3 gets 42 epochs instead of the 26 planned: the members so far trained faster "
                         "than measured"]
    assert finish(clock, pace=0.25, members=3) <= deadline.at


def test_members_left_waiting_stay_out_when_the_first_trained_as_measured(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(budget, "measure", lambda *args, **kwargs: COST)
    deadline = Deadline.after(15.0, clock=clock)
    job, guard = training.fit_to(deadline, _job(3), SimpleNamespace(test=None), SimpleNamespace(tensors=None),
                                 ("plain",), lambda line: None)

    def timed_train(member, bundle, data, seed, progress=None, on_start=None, time_hooks=None):
        net = TimedNet(clock, lambda epoch: EPOCH, batches=1)
        return training.Trained(net, engine.fit(net, _examples(1), SETTINGS, member.epochs, clock=clock,
                                                **(time_hooks or {})))

    monkeypatch.setattr(training, "train", timed_train)
    monkeypatch.setattr(training, "_kept_after_check", lambda done, *args: done)
    notes = []
    assert [len(t.history) for t in training.train_members(job, None, None, guard, notes.append)] == [26]
    assert notes == []  # the plan's own line said the two were left out


def train_ensemble(monkeypatch, slowdown: float) -> tuple[FakeClock, Deadline, list[training.Trained], list[str]]:
    """A 3-member ensemble planned for LIMIT s (fit_to's plan and guard) and trained by train_members
    on a machine `slowdown` times slower than the calibration measured."""
    clock = FakeClock()
    deadline = Deadline.after(LIMIT, clock=clock)
    chosen = budget.plan_epochs([COST] * 3, deadline.left(), min_epochs=budget.member_epochs(SEARCH_EPOCHS),
                                fixed=FIXED)
    job = _job(3)
    job = replace(job, members=tuple(replace(member, epochs=chosen.epochs) for member in job.members),
                  planned=chosen.members, waiting_epochs=budget.member_epochs(SEARCH_EPOCHS))

    def timed_train(member, bundle, data, seed, progress=None, on_start=None, time_hooks=None):
        net = TimedNet(clock, lambda epoch: slowdown * EPOCH, batches=1)
        return training.Trained(net, engine.fit(net, _examples(1), SETTINGS, member.epochs, clock=clock,
                                                **(time_hooks or {})))

    monkeypatch.setattr(training, "train", timed_train)
    notes = []
    trained = training.train_members(job, None, None, budget.Guard(deadline, [COST] * 3, FIXED), notes.append)
    return clock, deadline, trained, notes


def test_an_ensemble_on_a_slower_machine_replans_its_later_members_and_ends_in_time(monkeypatch):
    clock, deadline, trained, notes = train_ensemble(monkeypatch, slowdown=1.4)
    # the first member's 90 epochs (37.8 s) still fit; the other two share what is left at its pace:
    # (52.2 - 1.4 * (1 + 2) - 6) // (1.4 * 0.6) = 49 (50 but for rounding), then
    # (31.62 - 1.4 * (2 + 1) - 6) // 0.42 = 50: the writes after the training are not slowed
    assert [len(member.history) for member in trained] == [90, 49, 50]
    assert notes == [f"note: member {k} gets {epochs} epochs instead of the 90 planned: the members so far trained "
                     "slower than measured" for k, epochs in ((2, 49), (3, 50))]
    assert finish(clock, pace=1.4, members=3) <= deadline.at


def test_an_ensemble_on_a_much_slower_machine_keeps_only_the_members_that_fit(monkeypatch):
    clock, deadline, trained, notes = train_ensemble(monkeypatch, slowdown=2.5)
    assert [len(member.history) for member in trained] == [90]  # 67.5 s: the rest would get no epoch
    assert notes == ["warning: this machine runs slower than measured; the ensemble keeps 1 of its 3 members to end "
                     "within --time-limit"]
    assert finish(clock, pace=2.5) <= deadline.at


# --- the deadline ----------------------------------------------------------------------


def test_a_deadline_reads_the_time_from_its_clock():
    clock = FakeClock()
    deadline = Deadline.after(10.0, clock=clock)
    assert deadline.at == clock() + 10.0 and deadline.left() == 10.0 and deadline.fits(10.0)
    clock.advance(4.0)
    assert deadline.left() == 6.0 and deadline.fits(6.0) and not deadline.fits(6.5)
    clock.advance(7.0)
    assert deadline.left() == -1.0 and not deadline.fits(0.0)
    # the clock is no part of the moment: equal, hashed alike, not shown
    assert deadline == Deadline(deadline.at) and hash(deadline) == hash(Deadline(deadline.at))
    assert repr(deadline) == f"Deadline(at={deadline.at!r})"


def test_a_deadline_reads_wall_clock_time_unless_told_otherwise():
    deadline = Deadline.after(10.0)
    assert deadline.clock is time.time and 0 < deadline.left() <= 10.0
    assert pickle.loads(pickle.dumps(deadline)).clock is time.time  # a trial process may receive one


# --- the search: no new trial once its first rung no longer fits --------------------------


class FixedConfig(Searcher):
    """The searcher inside: the same config every time (module level: the tests pickle it)."""

    def suggest(self, trial_id):
        return {"lr": 0.1}


def deadline_searcher(seconds: float, first_rung_epochs: int = 2) -> tuple[DeadlineSearcher, FakeClock]:
    clock = FakeClock()
    searcher = DeadlineSearcher(FixedConfig(metric="val_acc", mode="max"), clock() + seconds, first_rung_epochs,
                                clock=clock)
    return searcher, clock


def test_the_searcher_suggests_until_the_first_rung_no_longer_fits():
    searcher, clock = deadline_searcher(30.0)
    assert searcher.suggest("first") == {"lr": 0.1}  # nothing measured yet: a rung costs 0 s
    searcher.on_trial_result("first", {"epoch": 1, "time_this_iter_s": 5.0})  # a rung: 2 x 5 s
    began, suggested = clock(), []
    while (config := searcher.suggest(f"t{len(suggested)}")) is not Searcher.FINISHED:
        suggested.append(clock() - began)
        clock.advance(5.0)
    assert config is Searcher.FINISHED and suggested == [0.0, 5.0, 10.0, 15.0, 20.0]  # 20 + 10 <= 30 < 25 + 10


def test_the_first_rung_is_priced_at_the_median_epoch_so_far():
    searcher, _ = deadline_searcher(30.0)
    assert searcher.first_rung_seconds() == 0.0
    for epoch, seconds in [(0, 99.0), (1, 10.0), (2, "slow"), (3, 20.0), (4, None), (5, 90.0)]:
        searcher.on_trial_result("a", {"epoch": epoch, "time_this_iter_s": seconds})
    searcher.on_trial_result("a", {"epoch": 6})
    # epoch 0 (a result before any training) and times that are no number do not count
    assert searcher.epoch_seconds == [10.0, 20.0, 90.0] and searcher.first_rung_seconds() == 40.0
    assert searcher.suggest("b") is Searcher.FINISHED  # 40 s > 30 s


def test_a_resumed_searcher_keeps_its_measurements_and_starts_no_trial():
    searcher, clock = deadline_searcher(3600.0)
    searcher.on_trial_result("a", {"epoch": 1, "time_this_iter_s": 7.0})
    state = pickle.loads(pickle.dumps(searcher.get_state()))  # as Tune writes and reads its snapshot
    assert "searcher" not in state and "clock" not in state
    resumed, resumed_clock = deadline_searcher(3600.0)
    resumed.set_state(state)
    assert resumed.epoch_seconds == [7.0] and resumed.clock is resumed_clock  # the clock it was built with
    assert resumed.deadline == 0.0 and resumed.suggest("b") is Searcher.FINISHED  # the time given is spent
    bare = DeadlineSearcher.__new__(DeadlineSearcher)  # restored without __init__: reads the wall clock
    bare.set_state(state)
    assert bare.clock is time.time and bare.suggest("c") is Searcher.FINISHED


def test_a_searcher_on_the_wall_clock_pickles_whole():
    """Tune keeps the search algorithm itself in its experiment files (a resume reads it back)."""
    far_off = 4.0e9  # 2096 in time.time() seconds: the wall clock has not reached it
    searcher = DeadlineSearcher(FixedConfig(metric="val_acc", mode="max"), far_off, first_rung_epochs=2)
    copy = pickle.loads(pickle.dumps(searcher))
    assert copy.clock is time.time and copy.suggest("a") == {"lr": 0.1}


# --- a trial's epoch check ----------------------------------------------------------------


def test_a_trial_starts_no_epoch_that_would_end_after_the_deadline():
    assert not _out_of_time(None, 1e9, now=0.0)  # no time limit
    assert not _out_of_time(100.0, 10.0, now=89.0)
    assert not _out_of_time(100.0, 10.0, now=90.0)  # ends right at the deadline: still in time
    assert _out_of_time(100.0, 10.0, now=90.5)
    assert _out_of_time(100.0, 0.0, now=100.5)  # the deadline has passed
