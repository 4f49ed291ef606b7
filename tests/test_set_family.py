"""`tune --space all --set family=cnn`: a search across families narrowed to one. The searcher
gets that family's hand-made starting points with their own values, and no other family's."""
from __future__ import annotations

from collections import Counter

import pytest

from digitsearch import spaces
from digitsearch.search import algorithms
from digitsearch.search.request import SearchRequest, parse_overrides
from digitsearch.store import study

OTHER_FAMILIES = ("lenet.", "vgg.", "resnet.", "lstm.", "transfer.")


@pytest.fixture(scope="module")
def cnn_only() -> spaces.SearchSpace:
    return spaces.load("all").fixed(parse_overrides(["family=cnn"]))


def _cnn_values(point: dict) -> dict:
    return {k: v for k, v in point.items() if k.startswith("cnn.")}


def test_the_cnn_starting_points_stay_with_their_values_and_the_others_go(cnn_only):
    points = cnn_only.points_to_evaluate()
    assert not [k for point in points for k in point if k.startswith(OTHER_FAMILIES)]
    # cnn.yaml's three nets, in its order, every architecture value as that file gives it
    assert [_cnn_values(p) for p in points] == [_cnn_values(p) for p in spaces.load("cnn").starting_points]
    assert len(points) == 3 and all("family" not in p for p in points)  # family is a constant now
    assert cnn_only.constants["family"] == "cnn" and cnn_only.families == ("cnn",)
    # the other families' parameters go too: no --set could switch them on again
    assert not [p.name for p in cnn_only.entries if p.name.startswith(OTHER_FAMILIES)]
    assert {p.name for p in cnn_only.entries if p.name.startswith("cnn.")} == \
        {p.name for p in spaces.load("all").entries if p.name.startswith("cnn.")}
    # fixing another parameter keeps every family's points, without that key
    by_lr = spaces.load("all").fixed({"lr": 0.001})
    assert len(by_lr.starting_points) == len(spaces.load("all").starting_points) > 3
    assert all("lr" not in p for p in by_lr.starting_points)


def _waiting(folder) -> int:
    """Trials enqueued on the experiment's study and not yet asked for (Optuna's WAITING)."""
    import optuna

    return len(study.load(folder).get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def test_the_searcher_asks_for_the_three_cnn_nets_first_then_cnn_only(cnn_only, tmp_path):
    """What Tune gets from the search algorithm the CLI builds (OptunaSearch on the experiment's
    study), asked trial by trial as Tune asks, without starting Ray."""
    request = SearchRequest(space="all", overrides={"family": "cnn"}, trials=6)
    searcher = algorithms.searcher(request, cnn_only, tmp_path, {})  # the study named after the folder
    assert _waiting(tmp_path) == 3  # what was enqueued on the study: the three cnn nets, nothing else
    configs = [searcher.suggest(f"trial-{k}") for k in range(3)]
    assert _waiting(tmp_path) == 0
    configs += [searcher.suggest(f"trial-{k}") for k in range(3, 5)]
    assert all(c["family"] == "cnn" for c in configs)
    assert not [k for config in configs for k in config if k.startswith(OTHER_FAMILIES)]
    cnn_points = spaces.load("cnn").starting_points
    for config, point in zip(configs, cnn_points):
        assert {k: config[k] for k in point if k in config} == {k: v for k, v in point.items() if k in config}
        assert _cnn_values(config) == _cnn_values(point)
    assert all(_cnn_values(c) not in [_cnn_values(p) for p in cnn_points] for c in configs[3:])  # then sampled


def test_tune_with_set_family_trains_the_three_cnn_nets(tmp_path):
    """The command line end to end: three trials of one epoch are cnn.yaml's three nets."""
    import pandas as pd

    from conftest import run_cli
    from digitsearch.store.trials import configs, starting_point_trials

    run = run_cli("tune", "--space", "all", "--set", "family=cnn", "--dataset", "digits", "--trials", "3",
                  "--max-epochs", "1", "--results", str(tmp_path), "--name", "s", "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    folder = tmp_path / "s"
    assert sorted(starting_point_trials(folder).values()) == [1, 2, 3]
    assert set(pd.read_csv(folder / "leaderboard.csv")["family"]) == {"cnn"}
    trained = Counter(frozenset(_cnn_values(config).items()) for config in configs(folder).values())
    assert trained == Counter(frozenset(_cnn_values(p).items()) for p in spaces.load("cnn").starting_points)
