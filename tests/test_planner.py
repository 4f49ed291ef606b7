"""The search planner (search/planner.py): when a time-limited search hands the rest of the time to
the final training, and what it says the search added. Simulated epochs on a fake clock."""
from __future__ import annotations

import pytest
from clocks import FakeClock

from digitsearch.search.deadline import DeadlineSearcher
from digitsearch.search.planner import SearchPlanner

START = {"cnn.depth": 3, "lr": 0.003}
SAMPLED = {"cnn.depth": 2, "lr": 0.01}
VAL = 800  # one validation image: 0.00125
MAX_EPOCHS = 15


def result(epoch: int, acc: float, config: dict, seconds: float = 5.0, note: str = "") -> dict:
    return {"epoch": epoch, "val_acc": acc, "time_this_iter_s": seconds, "config": config, "note": note}


def planner(clock: FakeClock, earliest_after: float | None = 100.0) -> SearchPlanner:
    earliest = None if earliest_after is None else clock() + earliest_after
    return SearchPlanner(earliest, VAL, [START], MAX_EPOCHS, clock=clock)


def test_it_never_stops_before_the_earliest_moment():
    clock = FakeClock()
    plan = planner(clock)
    for epoch in range(1, 10):
        clock.advance(10)
        assert plan("start", result(epoch, 0.95, START)) is False
    assert plan.why is None and "at least" in plan.intent()


def test_without_an_earliest_moment_it_only_watches():
    clock = FakeClock()
    plan = planner(clock, earliest_after=None)
    for epoch in range(1, 30):
        clock.advance(30)
        assert plan("start", result(epoch, 0.95, START)) is False
    assert not plan.stopped


def test_a_leader_that_only_trains_on_is_no_search_gain():
    clock = FakeClock()
    plan = planner(clock)
    stopped = []
    for epoch in range(1, 40):
        clock.advance(5)
        stopped.append(plan("start", result(epoch, min(0.999, 0.90 + epoch * 0.003), START)))
    assert any(stopped)
    first_stop = stopped.index(True) + 1
    assert first_stop * 5 >= 100  # not before the earliest moment
    assert "found no config better than its leader" in plan.why
    assert "final training" in plan.why
    # after the decision every trial stops at its next result, and the searcher starts no more
    assert plan("other", result(1, 0.5, SAMPLED)) is True


def test_a_search_still_finding_better_configs_goes_on():
    clock = FakeClock(); plan = planner(clock)  # noqa: E702
    acc = 0.90
    for step in range(60):  # a new leader every 10 s, each an image ahead: searching pays
        clock.advance(10)
        acc += 1 / VAL
        assert plan(f"t{step}", result(1, acc, SAMPLED)) is False
    assert plan.why is None


def test_search_gain_slower_than_training_gain_stops():
    clock = FakeClock(); plan = planner(clock)  # noqa: E702
    for epoch in range(1, 25):  # the leader gains 2 images an epoch of 5 s: 24 images a minute
        clock.advance(5)
        plan("start", result(epoch, 0.80 + epoch * 2 / VAL, START))
    assert plan.why is not None and "gains" in plan.why


def test_unusable_trials_have_no_curve():
    clock = FakeClock(); plan = planner(clock)  # noqa: E702
    plan("bad", result(0, 0.0, SAMPLED, note="over budget: too big"))
    plan("diverged", result(1, 0.0, SAMPLED, note="diverged: non-finite loss"))
    assert plan.curves == {}


def test_what_the_search_added_at_equal_epochs():
    clock = FakeClock(); plan = planner(clock, earliest_after=None)  # noqa: E702
    for epoch, acc in enumerate([0.95, 0.97, 0.98, 0.99, 0.995], start=1):
        plan("start", result(epoch, acc, START))
    for epoch, acc in enumerate([0.96, 0.985, 0.99], start=1):
        plan("found", result(epoch, acc, SAMPLED))
    said = plan.added()
    # at epoch 3: the sampled config's 0.99 against the starting point's 0.98: 8 images
    assert "added +1.00 points (+8 validation images)" in said
    assert "start 1" in said and "(3)" in said


def test_nothing_added_is_said_as_nothing():
    clock = FakeClock(); plan = planner(clock, earliest_after=None)  # noqa: E702
    plan("start", result(1, 0.97, START))
    plan("found", result(1, 0.96, SAMPLED))
    assert plan.added().startswith("the search added nothing")
    lone = planner(clock, earliest_after=None)
    lone("start", result(1, 0.97, START))
    assert "no sampled config" in lone.added()


class _Inner:
    metric, mode = "val_acc", "max"

    def suggest(self, trial_id):
        return {"lr": 0.1}

    def on_trial_result(self, *a):
        pass


def test_the_searcher_starts_nothing_once_the_planner_stopped():
    clock = FakeClock()
    plan = planner(clock, earliest_after=0.0)
    searcher = DeadlineSearcher(_Inner(), clock() + 1000, 1, clock=clock, planner=plan)
    assert searcher.suggest("a") == {"lr": 0.1}
    plan.why = "stopped"
    assert searcher.suggest("b") == DeadlineSearcher.FINISHED
    assert "planner" not in searcher.get_state()


@pytest.mark.parametrize("earliest", [None, 100.0])
def test_the_planner_pickles(earliest):
    import pickle

    plan = planner(FakeClock(), earliest)
    assert pickle.loads(pickle.dumps(plan)).one_image == plan.one_image


def test_the_report_says_why_the_search_stopped_and_what_it_added(tmp_path):
    import json

    from digitsearch.store.layout import SEARCH_PLAN_FILE
    from digitsearch.viz.report import plan_md

    assert plan_md(tmp_path) == []  # a search from before the planner
    (tmp_path / SEARCH_PLAN_FILE).write_text(json.dumps(
        {"why": "its time ran out", "added": "the search added nothing", "planner_stopped": False}))
    assert plan_md(tmp_path) == ["**Why the search stopped:** its time ran out.",
                                 "**What the search added:** the search added nothing."]


def test_it_waits_for_a_starting_point_to_finish_its_epochs():
    clock = FakeClock(); plan = planner(clock, earliest_after=0.0)  # noqa: E702
    for epoch in range(1, MAX_EPOCHS):  # the recipe starts slowly: nothing to judge it by until it ends
        clock.advance(20)
        assert plan("start", result(epoch, 0.5, START)) is False
    clock.advance(20)
    assert plan("start", result(MAX_EPOCHS, 0.5, START)) is True


def test_it_waits_for_a_whole_window_of_results():
    clock = FakeClock(); plan = planner(clock, earliest_after=0.0)  # noqa: E702
    clock.advance(1000)  # Ray's start and the first epoch took long: the window counts from the first result
    assert plan("found", result(1, 0.9, SAMPLED)) is False
    clock.advance(30)
    assert plan("found", result(2, 0.9, SAMPLED)) is False
    clock.advance(400)
    assert plan("found", result(3, 0.9, SAMPLED)) is True
