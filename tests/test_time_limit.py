"""`tune --time-limit`: the whole command (search, retrain of an ensemble with TTA) ends within
its limit, every trial it started in the leaderboard, nothing cut short; and the pieces that
keep it there (durations, the searcher that stops starting trials, the trial's epoch guard)."""
from __future__ import annotations

import json
import re
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
from clocks import FakeClock

from conftest import RAN, run_cli, run_in_process, write_record
from digitsearch.core import engine
from digitsearch.core.timebudget import Deadline, parse_duration, shown
from digitsearch.errors import UserError
from digitsearch.final import export, formats

LIMIT = 90  # seconds: the "a --time-limit 90s search on the bundled digits ends within 95 s"


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400),
                                           ("45", 45), ("1.5m", 90), (" 2M 5S ", 125)])
def test_durations_read_as_a_user_writes_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "0s", "-5", "m"])
def test_a_bad_duration_is_one_line(text):
    with pytest.raises(UserError, match="--time-limit"):
        parse_duration(text)


def test_durations_are_shown_short():
    assert [shown(s) for s in (0, 42, 95, 1830, 5400)] == ["0s", "42s", "1m35s", "30m30s", "1h30m"]
    assert Deadline.after(10).fits(5) and not Deadline.after(10).fits(20)


def test_the_searcher_stops_starting_trials_when_the_first_rung_no_longer_fits():
    from ray.tune.search import Searcher

    from digitsearch.search.deadline import DeadlineSearcher

    class Inner(Searcher):
        def suggest(self, trial_id):
            return {"lr": 0.1}

    clock = FakeClock()
    searcher = DeadlineSearcher(Inner(metric="val_acc", mode="max"), clock() + 30, first_rung_epochs=2, clock=clock)
    assert searcher.suggest("a") == {"lr": 0.1}  # no epoch measured yet: the first trials start
    clock.advance(1.0)  # the search has run for a second: 29 s left
    searcher.on_trial_result("a", {"epoch": 1, "time_this_iter_s": 10.0})
    assert searcher.suggest("b") == {"lr": 0.1}  # 2 epochs of 10 s fit in the 29 s left
    searcher.on_trial_result("a", {"epoch": 2, "time_this_iter_s": 20.0})
    assert searcher.suggest("c") is Searcher.FINISHED  # 2 x 15 s (the median) do not
    searcher.set_state(searcher.get_state())  # a --resume: the trials in flight finish, no new one starts
    assert searcher.deadline == 0.0 and searcher.suggest("d") is Searcher.FINISHED


def test_options_that_need_retrain_or_clash_are_refused_in_one_line(tmp_path):
    for args, message in [(["--ensemble", "2"], "--ensemble and --tta go with --retrain"),
                          (["--tta"], "--ensemble and --tta go with --retrain"),
                          (["--time-limit", "soon"], "is not a duration")]:
        ran = run_in_process("tune", "--results", str(tmp_path), *args)
        assert ran.returncode == 2 and message in ran.stderr and "Traceback" not in ran.stderr, ran.stderr


def test_trials_train_on_a_part_of_large_data_under_a_time_limit():
    from digitsearch.search.request import TIME_LIMITED_SEARCH_EXAMPLES, SearchRequest

    assert SearchRequest().trial_examples is None  # no limit: all
    assert SearchRequest(time_limit=60).trial_examples == TIME_LIMITED_SEARCH_EXAMPLES
    assert SearchRequest(time_limit=60, search_examples=0).trial_examples is None  # 0: all, asked for
    assert SearchRequest(search_examples=500).trial_examples == 500
    with pytest.raises(UserError, match="--search-examples"):
        SearchRequest(search_examples=-1).checked()


def test_a_checked_request_is_a_new_value_and_a_time_limit_alone_leaves_the_count_open(tmp_path):
    """checked() settles the trial count without touching the request; "as many as fit" is None,
    in the request and in experiment.json (a file from before, with its never-reached 100,000, reads the same)."""
    import dataclasses

    from digitsearch.search.request import DEFAULT_TRIALS, SearchRequest
    from digitsearch.store import experiments

    asked = SearchRequest(trials=None)
    assert asked.checked().trials == DEFAULT_TRIALS and asked.trials is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        asked.trials = 3
    timed = SearchRequest(trials=None, time_limit=600).checked()
    assert timed.trials is None and timed.uncapped
    assert not SearchRequest(trials=20, time_limit=600).checked().uncapped
    write_record(tmp_path / "old", time_limit=600.0, trials=100_000)
    meta = experiments.read_meta(tmp_path / "old")
    assert meta["trials"] is None and meta["rounds"] == [{"dir": "tune", "trials": None}]


def test_the_search_subset_is_stratified_and_leaves_validation_alone():
    import numpy as np

    from digitsearch import data

    bundle = data.load("digits", seed=0)
    part = bundle.with_train_subset(500, seed=0)
    assert len(part.train) == 500 and part.val is bundle.val and part.test is bundle.test
    full_share = np.bincount(bundle.train.labels) / len(bundle.train)
    assert np.abs(np.bincount(part.train.labels) / 500 - full_share).max() < 0.01  # each class as common as before
    assert "500 of" in part.notes[-1] and bundle.with_train_subset(len(bundle.train), seed=0) is bundle


def _time_limited_search(results, limit: int) -> tuple:
    """`tune --time-limit` of a search and its retrain (an ensemble of 2 with TTA) on the digits,
    the trials on 900 of its training images (--search-examples): (the run, its wall seconds)."""
    began = time.monotonic()
    ran = run_cli("tune", "--space", "cnn", "--time-limit", f"{limit}s", "--max-epochs", "8", "--retrain",
                  "--ensemble", "2", "--tta", "--search-examples", "900", "--results", str(results), "--name", "tl",
                  timeout=300)
    return ran, time.monotonic() - began


def _assert_every_trial_kept_and_the_retrain_written(ran, folder) -> None:
    """What a time-limited command leaves, however fast the machine: every trial Tune started a
    leaderboard row, none running in the study, the retrain's files, progress a line per epoch."""
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    sizes = json.loads((folder / "experiment.json").read_text())["sizes"]
    assert sizes["trial_train"] == 900 < sizes["train"] and "trials train on a stratified 900 of the" in ran.stdout
    table = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str})
    started = list((folder / "tune").glob("trial_*"))
    assert len(table) == len(started) >= 1  # every trial Tune started is a row: nothing lost
    assert not (table["status"] == "interrupted").any() and json.loads((folder / "experiment.json").read_text())[
        "status"] == "finished"
    assert set(table["origin"].dropna()) >= {"start 1"} and table["status"].isin(
        ["completed", "stopped early", "time limit", "at chance", "infeasible", "over budget"]).all()
    with sqlite3.connect(folder / "optuna.db") as db:
        states = dict(db.execute(f"select state, count(*) from trials where {RAN} group by state").fetchall())
    # Starting points the time left no room for stay WAITING (enqueued, never asked for): a later
    # --add-trials round runs them first. Every trial that was asked for is a leaderboard row.
    asked = sum(count for state, count in states.items() if state != "WAITING")
    assert states.get("RUNNING", 0) == 0 and asked == len(table), states
    # not a terminal: a line per retrain epoch (a Rich bar would show only at the end of a log)
    assert re.search(r"^retrain: (member 1/\d \(trial \w+\) )?epoch 1/\d+: loss [\d.]+ acc [\d.]+ \d+ examples/s",
                     ran.stdout, re.M), ran.stdout[-3000:]
    # the planner's last words: why the search stopped, what it added over its best starting point
    plan = json.loads((folder / "search_plan.json").read_text())
    assert f"search: stopped because {plan['why']}" in ran.stdout and f"search: {plan['added']}" in ran.stdout
    metrics = json.loads((folder / "final" / "metrics.json").read_text())
    assert 1 <= len(metrics["members"]) <= 2 and metrics["tta"] and 0 < metrics["test_accuracy"] <= 1
    assert (folder / "final" / "predictions.csv").is_file() and (folder / "final" / "model.pt").is_file()


@pytest.mark.e2e
def test_a_time_limited_search_and_retrain_keep_every_trial_and_write_the_model(tmp_path, digits_bundle):
    """The invariants of a time-limited command, and its ensemble with TTA exported to ONNX
    predicts what PyTorch predicts."""
    ran, _ = _time_limited_search(tmp_path, limit=40)
    _assert_every_trial_kept_and_the_retrain_written(ran, tmp_path / "tl")
    onnxruntime = pytest.importorskip("onnxruntime")
    served = tmp_path / "tl" / "final" / "model.pt"
    model, meta = export.load_model(served)
    assert meta["family"] == "ensemble" and meta["model_args"]["tta"]["views"]
    formats.write(served, ("onnx",))
    norm = meta["normalisation"]
    x = engine.to_tensors(digits_bundle.test.images[:64], None, norm["mean"], norm["std"]).x
    session = onnxruntime.InferenceSession(str(served.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(["logits"], {"input": x.numpy()})
    assert np.abs(onnx_out - engine.predict_logits(model, x).numpy()).max() <= 1e-4


@pytest.mark.timing
def test_a_90s_search_and_retrain_end_within_95s_with_every_trial_kept(tmp_path, band):
    ran, wall = _time_limited_search(tmp_path, limit=LIMIT)
    _assert_every_trial_kept_and_the_retrain_written(ran, tmp_path / "tl")
    assert len(pd.read_csv(tmp_path / "tl" / "leaderboard.csv")) >= 2
    band(f"tune --time-limit {LIMIT}s --retrain --ensemble 2 --tta: its wall time", wall, LIMIT + 5)


def test_a_retrain_that_no_longer_fits_after_the_search_says_where_the_search_is(monkeypatch, tmp_path):
    """tune --retrain --time-limit on a machine slower than the search planned for: the retrain's
    one-line refusal also says that the search is kept and how to retrain it without a limit."""
    from digitsearch.cli import best, tune
    from digitsearch.core import budget
    from digitsearch.errors import UserError
    from digitsearch.search import session

    def too_slow(*args, **kwargs):
        budget.plan_epochs([budget.Cost(epoch=50.0, test=4.0)], 54.0, fixed=6.0)

    monkeypatch.setattr(best, "retrain_with_progress", too_slow)
    monkeypatch.setattr(session, "stop", lambda: None)
    with pytest.raises(UserError) as refused:
        tune._retrain(tmp_path / "tl", ensemble=2, tta=True, whole=None)
    assert str(refused.value) == (
        "--time-limit leaves 54s for the retrain, but one epoch of the best trial, its tests and the writes take "
        f"about 1m on this machine; give it more time; the search's results are kept in {tmp_path / 'tl'} "
        "(`digitsearch best --name tl --retrain` retrains without a limit)")
