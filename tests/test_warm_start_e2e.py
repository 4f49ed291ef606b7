"""`tune --warm-start` and `--portfolio` through the CLI: an earlier search's best configs go
first, its finished trials join the new study on the same data only, and a portfolio file's
configs are the first starting points."""
from __future__ import annotations

import json
import re

import optuna
import pandas as pd
import pytest

from conftest import assert_one_line_error, run_in_process, tiny_search_in_process
from digitsearch import spaces
from digitsearch.search.warm_start import WARM_ATTR
from digitsearch.store import study

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_per_file")]


def _study_trials(folder):
    loaded = optuna.load_study(study_name=study.name(folder), storage=study.storage(folder))
    return loaded.get_trials(deepcopy=False)


def test_a_warm_start_begins_where_the_earlier_search_ended(tmp_path):
    results = tmp_path / "results"
    earlier, _ = tiny_search_in_process(results, "first", "--portfolio", "none", trials=5)
    done = earlier[earlier["status"] == "completed"].sort_values("val_acc", ascending=False, kind="stable")
    best_config = json.loads(next((results / "first" / "tune").rglob(f"*{done.iloc[0]['trial_id']}*/params.json"))
                             .read_text())

    table, run = tiny_search_in_process(results, "again", "--warm-start", "first", "--portfolio", "none")
    assert "warm start: the 3 best configs of first go first" in run.stdout
    added = int(re.search(r"warm start: (\d+) finished trials of first added to the study \(the same data\)",
                          run.stdout).group(1))
    meta = json.loads((results / "again" / "experiment.json").read_text())
    first_point = meta["starting_points"][0]
    assert all(best_config[k] == v for k, v in first_point.items())
    # the first search trained the space's four starts: its best three come back first, the
    # others are not trained again
    assert "starting points first trained on the same data are not trained again" in run.stdout
    assert len(meta["starting_points"]) == 3
    warm = [t for t in _study_trials(results / "again") if WARM_ATTR in t.user_attrs]
    assert len(warm) == added >= 3 and all(t.user_attrs[WARM_ATTR].startswith("first/") for t in warm)
    assert table.loc[table["origin"] == "start 1"].shape[0] == 1

    # other data (another split): configs only, test_portfolio.py
    ran = run_in_process("tune", "--results", str(results), "--warm-start", "nowhere")
    assert ran.returncode == 2
    assert_one_line_error(ran.stderr, "--warm-start nowhere")


@pytest.mark.extended  # the built-in portfolio going first is gating (test_search_e2e)
def test_a_portfolio_file_goes_first(tmp_path):
    lenet = next(p for p in spaces.load("all").starting_points if p["family"] == "lenet")
    mine = tmp_path / "portfolio.yaml"
    mine.write_text(json.dumps({"configs": [{"id": "mine", "config": {**lenet, "lr": 0.004}}]}))
    results = tmp_path / "results"
    table, run = tiny_search_in_process(results, "seeded", "--space", "lenet", "--portfolio", str(mine), trials=1)
    assert "portfolio: 1 configs learned from earlier searches go first" in run.stdout
    config = json.loads(next((results / "seeded" / "tune").rglob("params.json")).read_text())
    assert config["lr"] == 0.004 and config["lenet.flavour"] == lenet["lenet.flavour"]
    assert pd.api.types.is_string_dtype(table["origin"]) and table["origin"].iloc[0] == "start 1"


@pytest.mark.extended
def test_the_portfolio_table_searches_every_candidate_on_a_dataset(tmp_path):
    """`portfolio table` on the digits: one real search of exactly the candidates (the image
    families' hand-made points and an earlier search's best), a row each, then `build`."""
    results = tmp_path / "results"
    tiny_search_in_process(results, "earlier", "--portfolio", "none", trials=2)
    table = tmp_path / "table.csv"
    ran = run_in_process("portfolio", "table", "--experiments", str(results / "earlier"), "--datasets", "digits",
                         "--epochs", "1", "--examples", "300", "--work", str(tmp_path / "work"), "--out", str(table))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    rows = pd.read_csv(table)
    families = {p["family"] for p in spaces.load("all").starting_points} - {"transfer"}
    assert set(rows["config_id"].str.split("-").str[0]) == families and (rows["dataset"] == "digits").all()
    assert rows["val_acc"].notna().sum() >= len(rows) - 1 and rows["config_id"].is_unique
    ran = run_in_process("portfolio", "build", "--table", str(table), "--size", "2")
    assert ran.returncode == 0 and ran.stdout.count("\n- id: ") == 2 and "best on digits" in ran.stdout
