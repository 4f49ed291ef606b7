"""`tune --space all --set family=cnn`: a search across families narrowed to one. The searcher
gets that family's hand-made starting points with their own values, and no other family's."""
from __future__ import annotations

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
    # cnn.yaml's four nets, in its order, every architecture value as that file gives it
    assert [_cnn_values(p) for p in points] == [_cnn_values(p) for p in spaces.load("cnn").starting_points]
    assert len(points) == 4 and all("family" not in p for p in points)  # family is a constant now
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


def test_the_searcher_asks_for_the_four_cnn_nets_first_then_cnn_only(cnn_only, tmp_path):
    """What Tune gets from the search algorithm the CLI builds (OptunaSearch on the experiment's
    study), asked trial by trial as Tune asks, without starting Ray."""
    request = SearchRequest(space="all", overrides={"family": "cnn"}, trials=6)
    searcher = algorithms.searcher(request, cnn_only, tmp_path, {})  # the study named after the folder
    assert _waiting(tmp_path) == 4  # what was enqueued on the study: the four cnn nets, nothing else
    configs = [searcher.suggest(f"trial-{k}") for k in range(4)]
    assert _waiting(tmp_path) == 0
    configs += [searcher.suggest(f"trial-{k}") for k in range(4, 6)]
    assert all(c["family"] == "cnn" for c in configs)
    assert not [k for config in configs for k in config if k.startswith(OTHER_FAMILIES)]
    cnn_points = spaces.load("cnn").starting_points
    for config, point in zip(configs, cnn_points):
        assert {k: config[k] for k in point if k in config} == {k: v for k, v in point.items() if k in config}
        assert _cnn_values(config) == _cnn_values(point)
    assert all(_cnn_values(c) not in [_cnn_values(p) for p in cnn_points] for c in configs[4:])  # then sampled


def test_the_narrowed_space_passes_the_checks_before_a_search(cnn_only, digits_bundle):
    """What `tune` checks before Ray starts: the other families' parameters went with their
    points, so nothing is refused (they would be: 'lenet.flavour' is not a cnn parameter)."""
    from digitsearch.search import validate

    configs = validate.check_space(cnn_only, {"family": "cnn"})
    assert {config["family"] for config in configs} == {"cnn"}
    assert len(configs) == 4 + validate.SAMPLES_PER_FAMILY
    from digitsearch.search import preflight

    # as a search on the digits runs it: preflight fixes flip off (not mirror-safe)
    validate.check_builds(preflight.check(cnn_only, "image", "digits", lambda line: None), configs, digits_bundle)
