"""The report's word on where the best trial came from (a starting point of the space, or
sampled), its leaderboard's origin column, and its importances over a study where ASHA's
stops are PRUNED. Synthetic leaderboards and studies: no search runs here."""
from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from conftest import write_record
from digitsearch import spaces
from digitsearch.viz import report

optuna.logging.set_verbosity(optuna.logging.WARNING)
KERAS = {"cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "lr": 0.001}


def _table(*rows: tuple) -> pd.DataFrame:
    """(trial_id, origin, val_acc, status) rows, best first as leaderboard.build orders them."""
    table = pd.DataFrame(rows, columns=["trial_id", "origin", "val_acc", "status"])
    return table.assign(family="cnn", n_params=1000, epochs=3, seconds=6.0)


def test_a_starting_point_that_wins_is_named_with_its_parameters_and_the_sampled_gap():
    table = _table(("s2", "start 2", 0.9850, "completed"), ("x", "sampled", 0.9750, "stopped early"),
                   ("s1", "start 1", 0.9700, "completed"))
    text = report.origin_md(table, {"s2": KERAS})
    assert text.startswith("The best trial, trial s2 (val_acc 0.9850), is the space's starting point 2 (`depth=2 ")
    assert text.endswith("; the best sampled config, trial x (val_acc 0.9750), trails it by 0.0100 val_acc.")


def test_a_sampled_winner_says_by_how_much_it_beats_the_best_trained_starting_point():
    table = _table(("x", "sampled", 0.9900, "completed"), ("s3", "start 3", 0.9650, "time limit"),
                   ("s1", "start 1", 0.0, "infeasible"))  # never trained: not the best starting point
    assert report.origin_md(table, {}) == ("The best trial, trial x (val_acc 0.9900), is a sampled config: it beats "
                                           "the best starting point (3: trial s3, val_acc 0.9650) by 0.0250 val_acc.")
    tie = _table(("x", "sampled", 0.99, "completed"), ("s1", "start 1", 0.99, "completed"))  # the smaller first
    assert report.origin_md(tie, {}).endswith("it ties the best starting point (1: trial s1, val_acc 0.9900).")


@pytest.mark.parametrize("rows, ending", [
    ((("x", "sampled", 0.98, "completed"), ("s1", "start 1", 0.0, "over budget")),
     "is a sampled config; none of the space's starting points trained."),
    ((("x", "sampled", 0.98, "completed"),),
     "is a sampled config; the space has no starting points to compare it with."),
    ((("s1", "start 1", 0.98, "completed"), ("x", "sampled", 0.0, "diverged")),
     "is the space's starting point 1; no sampled config trained."),
])
def test_what_the_sentence_says_when_one_side_is_missing(rows, ending):
    assert report.origin_md(_table(*rows), {}).endswith(ending)


def test_no_sentence_without_a_trained_trial_or_an_origin():
    assert report.origin_md(_table(("x", "sampled", 0.0, "infeasible")), {}) == ""
    assert report.origin_md(_table(("x", "", 0.98, "completed")), {}) == ""  # old experiment, space file gone


def test_the_reports_leaderboard_shows_the_origin():
    table = _table(("s1", "start 1", 0.98, "completed"), ("x", float("nan"), 0.97, "stopped early"))
    lines = report.leaderboard_md(table, {}).splitlines()
    assert lines[0].endswith("| val acc | status | origin |")
    assert lines[2].endswith("| completed | start 1 |") and lines[3].endswith("| stopped early | - |")


def _old_experiment(tmp_path, space: str):
    """An experiment whose leaderboard was written before the origin column: its first trial ran
    the cnn space's first starting point."""
    folder = tmp_path / "old"
    keras = dict(spaces.load("cnn").starting_points[0])
    for trial_id, config in (("a", keras), ("b", {"cnn.depth": 1, "lr": 0.01})):
        (folder / "tune" / f"trial_{trial_id}").mkdir(parents=True)
        (folder / "tune" / f"trial_{trial_id}" / "params.json").write_text(json.dumps(config))
    write_record(folder, space=space, space_path=space)
    return folder, _table(("a", "", 0.98, "completed"), ("b", "", 0.97, "completed")).drop(columns="origin")


def test_a_leaderboard_without_origin_gets_it_from_the_trials_configs(tmp_path):
    folder, table = _old_experiment(tmp_path, "cnn")
    assert list(report.with_origin(folder, table)["origin"]) == ["start 1", "sampled"]
    moved, table = _old_experiment(tmp_path / "moved", str(tmp_path / "gone.yaml"))
    assert list(report.with_origin(moved, table)["origin"]) == ["", ""]  # unknown: the sentence is left out


def test_importances_count_pruned_trials_by_their_best_epoch(tmp_path):
    """In an ASHA search most study trials are PRUNED, which Optuna's importances skip: the
    report reads them as COMPLETE with their best step, as the leaderboard does."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for number in range(8):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        depth = trial.suggest_int("depth", 1, 3)
        trial.report(0.5 + depth / 10, 1)
        if number == 0:
            trial.report(0.95, 2)
            study.tell(trial, 0.95)
        elif number == 1:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            trial.report(0.4 + depth / 10, 2)  # its last step is not its best
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    finished = report.finished_as_complete(study)
    assert len(finished.trials) == 7
    assert sorted(t.value for t in finished.trials)[-1] == 0.95
    assert {t.value for t in finished.trials[1:]} <= {0.6, 0.7, 0.8}  # each pruned trial's best step
    assert list(report._importances(finished)) == ["depth", "lr"]  # val_acc follows depth alone


def test_the_header_counts_the_trials_a_time_limit_ran_and_the_search_subset():
    sizes = {"train": 54000, "val": 6000, "test": 10000, "trial_train": 12000}
    assert report._sizes_md(sizes) == ("54,000 train (trials on a stratified 12,000 of them) / 6,000 validation / "
                                       "10,000 test examples")
    assert report._sizes_md({"train": 7200, "val": 800, "test": 2000}) == \
        "7,200 train / 800 validation / 2,000 test examples"  # an experiment from before the subset
    assert report._trials_md({"trials": None, "time_limit": 1437.0}, 47) == \
        "47 trials in a 23m57s time limit"
    assert report._trials_md({"trials": 12, "time_limit": None}, 12) == "12 trials"


def test_a_local_step_that_wins_is_named_with_its_parent_and_what_it_changed():
    from digitsearch.store.leaderboard import step_origins

    known = {"s1": "start 1", "x": "sampled", "y": "sampled", "z": "sampled"}
    steps = {"x": ("s1", ["lr", "cnn.dropout"]), "y": ("x", ["augment"]), "gone": ("s1", ["lr"])}
    assert step_origins(steps, known) == {"x": "step from start 1 (lr, cnn.dropout)", "y": "step from x (augment)"}
    table = _table(("x", "step from start 1 (lr, cnn.dropout)", 0.9950, "completed"),
                   ("s1", "start 1", 0.9925, "completed"))
    assert report.origin_md(table, {}) == (
        "The best trial, trial x (val_acc 0.9950, a step from start 1 (lr, cnn.dropout)), is a sampled config: "
        "it beats the best starting point (1: trial s1, val_acc 0.9925) by 0.0025 val_acc.")
