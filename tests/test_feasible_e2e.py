"""A real search under a small parameter budget (search/feasible.py): sampled configs over it are
skipped before they become trials, told to the study, counted in the run log's one line; the
space's starting points over it still run and are recorded as over budget, as before. A sampled
config at chance after its first epoch ends there, PRUNED in the study (search/chance.py)."""
from __future__ import annotations

import re

import optuna
import pandas as pd
import pytest

from conftest import tiny_search_in_process
from digitsearch.search.feasible import SKIPPED_ATTR
from digitsearch.search.mutation import TUNE_TRIAL_ATTR
from digitsearch.search.reconcile import ran_trials
from digitsearch.store import study

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_per_file")]

TRIALS = 7  # the cnn space's 4 starting points, then 3 sampled configs
# 3 of the 4 starting points, and about 5 in 6 configs sampled at random from the cnn space, have
# more parameters than this on the digits: the searcher skips about 15 draws for the 3 sampled trials
MAX_PARAMS = 60_000


def test_configs_over_the_budget_are_skipped_before_they_become_trials(tmp_path):
    results = tmp_path / "results"
    _, run = tiny_search_in_process(results, "budget", "--space", "cnn", "--dataset", "digits", "--portfolio", "none",
                                    "--max-params", str(MAX_PARAMS), "--seed", "0", trials=TRIALS, epochs=2)
    table = pd.read_csv(results / "budget" / "leaderboard.csv", dtype={"trial_id": str})
    sampled = table[~table["origin"].str.startswith("start")]
    assert len(sampled) == TRIALS - 4
    assert (sampled["n_params"] <= MAX_PARAMS).all() and not sampled["status"].isin(["over budget", "infeasible"]).any()
    over = table[table["status"] == "over budget"]
    assert set(over["origin"]) == {"start 1", "start 3", "start 4"}  # the hand-made nets run, as before

    searched = study.load(results / "budget")
    skipped = [t for t in searched.get_trials(deepcopy=False) if SKIPPED_ATTR in t.user_attrs]
    assert skipped and all(t.value == 0.0 for t in skipped)
    ran = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in ran_trials(searched)}
    assert set(ran) == set(table["trial_id"])  # one study trial per row; the skipped are no rows
    assert len(searched.trials) == len(table) + len(skipped)

    line = re.search(r"skipped (\d+) configs? before training: (.*)", run.stdout)
    assert line is not None, run.stdout
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (over budget|infeasible)", line[2])}
    assert int(line[1]) == sum(counts.values()) == len(skipped)
    assert counts.get("over budget", 0) >= 1

    for row in table[table["status"] == "at chance"].itertuples():  # most sampled nets on the digits
        assert row.epochs == 1 and row.note.startswith(f"at chance: val_acc {row.val_acc:.4f}")
        assert (ran[row.trial_id].state, list(ran[row.trial_id].intermediate_values)) == \
            (optuna.trial.TrialState.PRUNED, [1])
