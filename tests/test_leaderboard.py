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
