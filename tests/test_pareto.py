"""The Pareto front of a leaderboard, `best --pick`'s choices and --objective's spelling, on
synthetic leaderboards (no search): ties, equal accuracy, missing latency, unusable trials."""
from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from digitsearch.errors import UserError
from digitsearch.search.mutation import on_the_front
from digitsearch.search.request import SearchRequest
from digitsearch.store import pareto
from digitsearch.store.objectives import OBJECTIVES, Pick, parse_objective, parse_pick

LATENCY, PARAMS = (OBJECTIVES["latency"],), (OBJECTIVES["params"],)


def board(*rows) -> pd.DataFrame:
    """rows: (trial_id, status, val_acc, latency_ms, n_params)."""
    return pd.DataFrame(rows, columns=["trial_id", "status", "val_acc", "latency_ms", "n_params"])


def on_front(table, costs=LATENCY) -> list[str]:
    return sorted(table.loc[pareto.front(table, costs), "trial_id"])


def test_the_front_keeps_what_nothing_beats_on_both_accuracy_and_latency():
    table = board(("a", "completed", 0.99, 2.0, 200), ("b", "completed", 0.98, 0.5, 50),
                  ("c", "completed", 0.97, 1.0, 40),  # slower and less accurate than b: dominated
                  ("d", "stopped early", 0.90, 0.1, 10))  # the cheapest, however weak: on it
    assert on_front(table) == ["a", "b", "d"]
    assert on_front(table, PARAMS) == ["a", "b", "c", "d"]  # by parameters c (40 < 50) is on it
    assert on_front(table, LATENCY + PARAMS) == ["a", "b", "c", "d"]


def test_ties_stay_on_the_front_and_equal_accuracy_goes_to_the_cheaper():
    table = board(("a", "completed", 0.99, 1.0, 100), ("twin", "completed", 0.99, 1.0, 100),
                  ("slower", "completed", 0.99, 1.5, 100))
    assert on_front(table) == ["a", "twin"]  # neither twin is better than the other


def test_trials_without_latency_or_usable_accuracy_are_on_no_front():
    table = board(("old", "completed", 0.995, math.nan, 100), ("a", "completed", 0.99, 1.0, 100),
                  ("zero", "completed", 0.0, 0.01, 5), ("bad", "over budget", 0.0, 0.01, 5),
                  ("broke", "error", math.nan, math.nan, 0))
    assert on_front(table) == ["a"]
    assert not pareto.front(board(), LATENCY).any()
    assert not pareto.front(table.drop(columns="latency_ms"), LATENCY).any()  # a leaderboard from before costs


def test_picks_choose_within_the_points_asked():
    table = board(("best", "completed", 0.995, 3.0, 400_000), ("close", "completed", 0.993, 1.0, 90_000),
                  ("small", "completed", 0.985, 0.4, 30_000), ("tiny", "stopped early", 0.95, 0.2, 8_000),
                  ("twin", "completed", 0.9935, 1.0, 95_000))
    assert pareto.pick(table, parse_pick("best"))["trial_id"] == "best"
    assert pareto.pick(table, parse_pick("fastest"))["trial_id"] == "tiny"
    assert pareto.pick(table, parse_pick("smallest"))["trial_id"] == "tiny"
    assert pareto.pick(table, parse_pick("smallest-within:0.3"))["trial_id"] == "close"
    # equal latency: the more accurate of the two
    assert pareto.pick(table, parse_pick("fastest-within:0.3"))["trial_id"] == "twin"
    assert pareto.pick(table, parse_pick("smallest-within:1"))["trial_id"] == "small"
    assert pareto.pick(table, parse_pick("fastest-within:0"))["trial_id"] == "best"
    assert "within 0.3 points" in pareto.why_picked(pareto.pick(table, Pick("smallest", 0.3)), Pick("smallest", 0.3))


def test_a_pick_that_cannot_be_answered_is_one_line():
    with pytest.raises(UserError, match="no latency_ms figures"):
        pareto.pick(board(("old", "completed", 0.99, math.nan, 10)), parse_pick("fastest"))
    with pytest.raises(UserError, match="no trial has a usable val_acc"):
        pareto.pick(board(("bad", "over budget", 0.0, 1.0, 10)), parse_pick("best"))
    for bad in ("quick", "smallest-within", "smallest-within:x", "fastest:0.3", "best-within:1", "fastest-within:-1"):
        with pytest.raises(UserError, match="--pick"):
            parse_pick(bad)


def test_objectives_start_with_accuracy_and_name_known_costs():
    assert parse_objective("accuracy") == ("accuracy",)
    assert parse_objective("accuracy, latency,params") == ("accuracy", "latency", "params")
    assert SearchRequest(objective="accuracy,latency").study_metrics == (["best_val_acc", "latency_ms"],
                                                                         ["max", "min"])
    assert SearchRequest().study_metrics == ("best_val_acc", "max")
    for bad, why in (("latency", "start with accuracy"), ("accuracy,speed", "unknown 'speed'"),
                     ("accuracy,latency,latency", "twice"), ("", "start with accuracy")):
        with pytest.raises(UserError, match=why):
            SearchRequest(objective=bad).checked()
    with pytest.raises(UserError, match="--max-latency-ms must be above 0"):
        SearchRequest(max_latency_ms=0).checked()


def test_a_multi_objective_studys_steps_start_from_its_front():
    import numpy as np

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.99, 2.0], [0.98, 0.5], [0.97, 1.0], [0.0, float("inf")]):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, values)
    parents = {on_the_front(study, np.random.default_rng(seed)).number for seed in range(30)}
    assert parents == {0, 1}  # both front trials, never the dominated one or the unusable zero
