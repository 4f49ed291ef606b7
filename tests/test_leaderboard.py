"""The leaderboard's order and its family column, from results shaped like Ray's."""
from types import SimpleNamespace

import pandas as pd

from digitsearch.store import leaderboard


def result(trial_id: str, accs: list[float], params: int, seconds: float, config: dict):
    history = pd.DataFrame({"val_acc": accs, "epoch": range(1, len(accs) + 1)})
    return SimpleNamespace(metrics={"trial_id": trial_id, "params": params, "time_total_s": seconds, "note": ""},
                           metrics_dataframe=history, config=config, error=None, checkpoint=None,
                           path=f"/x/{trial_id}")


def test_ties_go_to_the_smaller_then_quicker_trial_and_family_is_named():
    grid = [result("big", [0.5, 1.0], 1_700_000, 400, {"seq2seq.encoder_width": 192}),
            result("small_slow", [1.0, 1.0], 300_000, 120, {"seq2seq.encoder_width": 64}),
            result("small_fast", [0.9, 1.0], 300_000, 90, {"seq2seq.encoder_width": 64}),
            result("worse", [0.7, 0.8], 10, 10, {"seq2seq.encoder_width": 32})]
    table = leaderboard.build(grid, max_epochs=2, family="seq2seq")
    assert list(table["trial_id"]) == ["small_fast", "small_slow", "big", "worse"]
    assert set(table["family"]) == {"seq2seq"}
    best = leaderboard.best_trial(table, leaderboard.configs_by_trial(grid))
    assert best["trial_id"] == "small_fast" and best["best_epoch"] == 2


def test_a_space_across_families_names_each_trials_family():
    grid = [result("a", [0.9], 10, 1, {"family": "lenet", "lenet.pool": "max"}),
            result("b", [0.8], 10, 1, {"family": "lstm", "lstm.hidden": 64})]
    table = leaderboard.build(grid, max_epochs=1, family="mixed")
    assert dict(zip(table["trial_id"], table["family"])) == {"a": "lenet", "b": "lstm"}
    assert list(table.columns[:3]) == ["trial_id", "family", "status"]


def test_origin_names_each_starting_point_by_number_and_the_rest_sampled():
    points = ({"cnn.depth": 2, "lr": 0.001}, {"cnn.depth": 3})  # partial configs, as a space's start: has them
    grid = [result("keras", [0.97], 100, 1, {"cnn.depth": 2, "lr": 0.001, "cnn.kernel": 3}),
            result("deep", [0.95], 100, 1, {"cnn.depth": 3, "lr": 0.01}),
            result("also_deep", [0.99], 100, 1, {"cnn.depth": 3, "lr": 0.02}),  # sampled: point 2 was "deep", first
            result("other", [0.90], 100, 1, {"cnn.depth": 1, "lr": 0.001})]
    table = leaderboard.build(grid, max_epochs=1, family="cnn", starting_points=points)
    assert list(table.columns[:5]) == ["trial_id", "family", "status", "origin", "val_acc"]
    assert dict(zip(table["trial_id"], table["origin"])) == {
        "keras": "start 1", "deep": "start 2", "also_deep": "sampled", "other": "sampled"}
    configs = leaderboard.configs_by_trial(grid)
    assert leaderboard.best_trial(table, configs)["origin"] == "sampled"  # best.json's
    header = leaderboard.top_table(table, configs).splitlines()[0].split()
    assert header[:5] == ["trial_id", "family", "status", "origin", "val_acc"] and "seconds" in header
    # a space without starting points: every trial sampled; none given (an older caller): unknown
    assert set(leaderboard.build(grid, max_epochs=1, starting_points=())["origin"]) == {"sampled"}
    assert set(leaderboard.build(grid, max_epochs=1)["origin"]) == {""}


def test_start_number_reads_the_origin_back():
    assert [leaderboard.start_number(o) for o in ("start 1", "start 12", "sampled", "", float("nan"))] == \
        [1, 12, None, None, None]


def test_a_trial_cut_at_the_time_limit_is_trained_and_may_be_the_best():
    timed = result("timed", [0.6, 0.9], 100, 5, {"lr": 0.01})
    timed.metrics["note"] = "time limit: 30m reached"
    table = leaderboard.build([timed, result("full", [0.5, 0.7, 0.8], 100, 5, {"lr": 0.1})], max_epochs=3)
    assert dict(zip(table["trial_id"], table["status"])) == {"timed": "time limit", "full": "completed"}
    best = leaderboard.best_trial(table, {"timed": {"lr": 0.01}, "full": {"lr": 0.1}})
    assert (best["trial_id"], best["best_epoch"], best["status"]) == ("timed", 2, "time limit")
