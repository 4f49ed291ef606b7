"""The portfolio: learned greedily from a table, fitted to a space, evaluated first; and the
warm start's trials fitted to a new space."""
from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from conftest import assert_one_line_error, run_in_process
from digitsearch import spaces
from digitsearch.errors import UserError
from digitsearch.search import warm_start
from digitsearch.spaces import portfolio
from digitsearch.spaces.portfolio_build import Row, greedy, portfolio_yaml, read_table, regrets, write_table

CNN = {"family": "cnn", **spaces.load("cnn").starting_points[0]}  # the recipe net
LENET = {"family": "lenet", **next(p for p in spaces.load("all").starting_points if p["family"] == "lenet")}
KERAS = {"family": "cnn", **spaces.load("cnn").starting_points[1]}


def _table(acc: dict[str, dict[str, float]]) -> list[Row]:
    configs = {"recipe": CNN, "lenet": LENET, "keras": KERAS, "other": {**KERAS, "lr": 0.002}}
    return [Row(c, d, v, 10.0, f"made for {c}", configs[c]) for c, by in acc.items() for d, v in by.items()]


# the recipe is good everywhere, lenet best only on "b", keras best only on "c", other never
TABLE = _table({
    "recipe": {"a": 0.99, "b": 0.90, "c": 0.95},
    "lenet": {"a": 0.95, "b": 0.92, "c": 0.80},
    "keras": {"a": 0.96, "b": 0.85, "c": 0.97},
    "other": {"a": 0.94, "b": 0.84, "c": 0.90},
})


def test_regret_is_the_share_of_the_spread_below_the_best():
    table = regrets(TABLE)
    assert table["recipe"]["a"] == 0.0 and table["other"]["a"] == 1.0
    assert table["recipe"]["b"] == pytest.approx((0.92 - 0.90) / (0.92 - 0.84))


def test_greedy_takes_the_generalist_first_then_what_covers_its_gaps():
    chosen = greedy(TABLE, size=4)
    assert [c for c, _ in chosen][:3] == ["recipe", "lenet", "keras"]  # lenet closes the larger gap (b)
    assert chosen[2][1] == 0.0  # every dataset's best is in: the loss is 0
    assert [c for c, _ in chosen][3] == "other"  # then by mean regret


def test_leaving_a_dataset_out_learns_without_it():
    assert [c for c, _ in greedy(TABLE, size=2, without=("c",))] == ["recipe", "lenet"]


def test_a_config_that_could_not_train_is_the_worst_there():
    rows = [r if (r.config_id, r.dataset) != ("recipe", "a") else Row(r.config_id, r.dataset, math.nan, 0.0,
                                                                     r.source, r.config) for r in TABLE]
    assert regrets(rows)["recipe"]["a"] == 1.0


def test_the_table_and_the_portfolio_file_round_trip(tmp_path):
    write_table(tmp_path / "table.csv", TABLE)
    rows = read_table(tmp_path / "table.csv")
    assert rows == TABLE
    (tmp_path / "p.yaml").write_text(portfolio_yaml(rows, greedy(rows, 2), "table.csv"))
    loaded = portfolio.load(str(tmp_path / "p.yaml"))
    assert loaded.configs == (CNN, LENET)
    evidence = yaml.safe_load((tmp_path / "p.yaml").read_text())["configs"][0]["evidence"]
    assert "best on a" in evidence and "c 0.9500" in evidence


def test_portfolio_build_on_the_command_line(tmp_path):
    write_table(tmp_path / "table.csv", TABLE)
    out = tmp_path / "p.yaml"
    ran = run_in_process("portfolio", "build", "--table", str(tmp_path / "table.csv"), "--size", "3",
                         "--out", str(out))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(portfolio.load(str(out)).configs) == 3
    ran = run_in_process("portfolio", "build", "--table", str(tmp_path / "table.csv"), "--without", "mnist")
    assert ran.returncode == 2
    assert_one_line_error(ran.stderr, "--without mnist", "a, b, c")


def test_the_built_in_portfolio_rebuilds_from_its_table():
    """search_spaces/portfolio/portfolio.yaml is what `portfolio build` makes of table.csv."""
    shipped = portfolio.PORTFOLIO_DIR / "portfolio.yaml"
    rows = read_table(portfolio.PORTFOLIO_DIR / "table.csv")
    size = len(yaml.safe_load(shipped.read_text())["configs"])
    assert shipped.read_text() == portfolio_yaml(rows, greedy(rows, size), "table.csv")


def test_a_family_space_takes_its_family_s_configs_without_family():
    cnn = spaces.load("cnn")
    points, dropped = portfolio.fitted([LENET, {**CNN, "flip": True, "lr": 5.0}], cnn)
    assert len(points) == 1 and "family" not in points[0] and "flip" not in points[0]
    assert "lr" not in points[0] and dropped == ["lr"]  # outside its range: left to the sampler


def test_a_space_across_families_keeps_family_and_drops_nothing():
    points, dropped = portfolio.fitted([LENET, CNN], spaces.load("all"))
    assert [p["family"] for p in points] == ["lenet", "cnn"] and dropped == []


def test_seeded_puts_the_portfolio_first_and_trains_nothing_twice():
    cnn = spaces.load("cnn")
    keras, _ = portfolio.fitted([KERAS], cnn)
    seeded = portfolio.seeded(cnn, keras)
    assert seeded.starting_points[0] == keras[0]
    # the Keras net was start 2 already (its flip: false aside, which the data decide)
    assert len(seeded.starting_points) == len(cnn.starting_points)
    assert seeded.starting_points[1] == cnn.starting_points[0]


def test_the_built_in_portfolio_seeds_built_in_spaces_only(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text((spaces.BUILTIN_DIR / "lenet.yaml").read_text())
    assert portfolio.applies(portfolio.BUILTIN, spaces.load("cnn"))
    assert not portfolio.applies(portfolio.BUILTIN, spaces.load(str(mine)))
    assert portfolio.applies(str(tmp_path / "p.yaml"), spaces.load(str(mine)))
    assert not portfolio.applies(portfolio.NONE, spaces.load("cnn"))


def test_a_bad_portfolio_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        portfolio.load(str(tmp_path / "missing.yaml"))
    (tmp_path / "p.yaml").write_text("configs: [{config: {lr: 0.1}}]\n")
    with pytest.raises(UserError, match="config 1 needs"):
        portfolio.load(str(tmp_path / "p.yaml"))
    (tmp_path / "p.yaml").write_text("configs: [{config: {family: cnn}, val_acc: {digits: high}}]\n")
    with pytest.raises(UserError, match="config 1's 'val_acc:' must map each dataset to an accuracy or null"):
        portfolio.load(str(tmp_path / "p.yaml"))
    ran = run_in_process("tune", "--portfolio", str(tmp_path / "p.yaml"), "--results", str(tmp_path / "r"))
    assert ran.returncode == 2
    assert_one_line_error(ran.stderr, "val_acc")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing written


def test_a_warm_trial_joins_a_space_that_could_have_sampled_it():
    cnn, every = spaces.load("cnn"), spaces.load("all")
    recipe = {k: v for k, v in CNN.items() if k != "family"}
    recipe["flip"] = False
    assert warm_start._params_in(every, recipe, "cnn")["family"] == "cnn"
    assert warm_start._params_in(cnn, {**recipe, "family": "cnn"}, None) == recipe
    assert warm_start._params_in(cnn, {**recipe, "lr": 5.0}, "cnn") is None  # outside the new range
    assert warm_start._params_in(cnn, recipe, "lenet") is None  # another family


def test_a_search_orders_the_members_that_train_on_its_data():
    """The file's first member may be first only because the others could not train on one
    dataset; where they all train, the greedy over the datasets they all trained on decides."""
    niche = {**KERAS, "lr": 0.002}
    chosen = portfolio.Portfolio("mine", (niche, CNN), ({"a": 0.90, "b": 0.93, "n": 0.80},
                                                        {"a": 0.99, "b": 0.94, "n": None}))
    assert chosen.for_data() == [CNN, niche]  # over a and b: the recipe is the generalist
    assert chosen.for_data(lambda config: config is niche) == [niche]  # numbers-like data: the one that trains
    assert portfolio.Portfolio("old", (niche, CNN)).for_data() == [niche, CNN]  # no evidence: the file's order


def test_on_28x28_digits_the_built_in_portfolio_starts_from_the_recipe_and_on_numbers_from_what_fits():
    from digitsearch.data.bundle import Bundle, Split
    from digitsearch.search.feasible import Budget, trains_within
    from digitsearch.search.request import SearchRequest, resolve_limits

    cnn = spaces.load("cnn")
    req = resolve_limits(SearchRequest(space="cnn"), cnn)
    budget = Budget(req.max_params, req.max_mflops, req.family_limits)
    recipe = {k: v for k, v in CNN.items() if k != "family"}

    def data(width: int) -> Bundle:
        pixels = np.zeros((20, 28, width), dtype=np.uint8)
        labels = np.arange(20) % 10
        return Bundle("toy", Split(pixels, labels), Split(pixels[:10], labels[:10]), None, [str(k) for k in range(10)])

    mnist = portfolio.points_for(portfolio.BUILTIN, cnn, trains_within(budget, data(28)))
    assert portfolio.covers(mnist[0], recipe) and len(mnist) == 5
    numbers = portfolio.points_for(portfolio.BUILTIN, cnn, trains_within(budget, data(84)))
    assert numbers and not any(portfolio.covers(point, recipe) for point in numbers)  # 3x the MFLOPs: over cnn's


def test_a_warm_start_on_other_data_carries_its_configs_but_not_its_trials(tmp_path, monkeypatch, digits_bundle):
    """Another split of the same images is other data: the earlier search's validation figures
    were measured on images the new search trains on, so none joins the new study."""
    from digitsearch.data import fingerprint, load
    from digitsearch.search import new_search
    from digitsearch.search.request import SearchRequest

    other_split = load("digits", seed=1)
    assert fingerprint.of(other_split) != fingerprint.of(digits_bundle)
    earlier = warm_start.WarmStart(tmp_path / "first", {"data_fingerprint": fingerprint.of(digits_bundle)}, (), ())
    added = []
    monkeypatch.setattr(warm_start, "add_finished_trials", lambda *args, **kwargs: added.append(args) or 0)
    lines: list[str] = []
    meta = {"data_fingerprint": fingerprint.of(other_split), "study_name": "other"}
    new_search._add_warm_trials(SearchRequest(space="cnn"), earlier, spaces.load("cnn"), tmp_path, meta, lines.append)
    assert lines == ["warm start: the data differ from first's, so its trials' values do not carry over: only its "
                     "best configs go first"] and not added
    meta["data_fingerprint"] = fingerprint.of(digits_bundle)
    new_search._add_warm_trials(SearchRequest(space="cnn"), earlier, spaces.load("cnn"), tmp_path, meta, lines.append)
    assert len(added) == 1 and lines[-1] == "warm start: 0 finished trials of first added to the study (the same data)"
