"""Real searches through the real command line (in this process, through Typer's CliRunner,
or in a process of its own): Ray Tune, Optuna, ASHA, retrain, predict.

Each search is tiny (bundled digits or a small CSV, a few trials, 1-3 epochs) but runs every
real component. The main one is the session's shared search (conftest.shared_search), which
test_board and test_exports read too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from conftest import ROOT, SHARED_SEED, assert_one_line_error, run_cli, run_in_process, write_kaggle_csv
from digitsearch.core import engine
from digitsearch.data import load
from digitsearch.final import export
from digitsearch.search.callbacks.faults import FAULT_VARIABLE

# the searches and commands run in this process share one Ray (the Ctrl-C test and the usage
# error keep a process of their own: they are about the process)
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_per_file")]  # the searches share one Ray

REPORTED = {"val_acc", "val_loss", "train_loss", "train_acc", "epoch_seconds", "images_per_second", "params"}


@pytest.fixture(scope="module")
def digits_search(shared_search):
    """The session's shared search (conftest.SharedSearch): 4 trials of the cnn space on the digits."""
    return shared_search.results, shared_search.folder, shared_search.tune


@pytest.fixture(scope="module")
def search_bundle():
    """The data exactly as the search split them (same seed)."""
    return load("digits", seed=int(SHARED_SEED))


@pytest.fixture(scope="module")
def retrained(shared_search):
    return shared_search.folder / "final", shared_search.retrain


def test_search_prints_progress_and_top_table(digits_search):
    _, _, run = digits_search
    assert "[4/4]" in run.stdout and "top 4 of 4 trials" in run.stdout and "best:" in run.stdout
    assert "Traceback" not in run.stderr


def test_leaderboard_has_one_row_per_trial(digits_search):
    _, folder, _ = digits_search
    table = pd.read_csv(folder / "leaderboard.csv")
    assert len(table) == 4
    columns = {"trial_id", "status", "val_acc", "best_epoch", "epochs", "n_params", "seconds", "cnn.depth", "lr"}
    assert columns <= set(table.columns)
    assert set(table["status"]) <= {"completed", "stopped early", "infeasible", "over budget", "diverged"}
    assert table["val_acc"].is_monotonic_decreasing
    best = json.loads((folder / "best.json").read_text())
    assert best["val_acc"] == pytest.approx(table["val_acc"].max())
    assert best["config"]["cnn.depth"] >= 1 and "lr" in best["config"]


def test_starting_points_run_first(digits_search, search_bundle):
    """The starting points experiment.json records are the study's first trials: the built-in
    portfolio's cnn configs that train on these data, in the order for them, then the space's
    hand-made nets not among them (on the digits without the flip key: preflight fixed it off,
    not mirror-safe)."""
    from digitsearch import spaces
    from digitsearch.search.feasible import Budget, trains_within
    from digitsearch.spaces import portfolio

    _, folder, _ = digits_search
    meta = json.loads((folder / "experiment.json").read_text())
    recorded = meta["starting_points"]
    cnn = spaces.load("cnn")
    budget = Budget(meta["max_params"], meta["max_mflops"], meta["family_limits"])
    learned = portfolio.points_for(portfolio.BUILTIN, cnn, trains_within(budget, search_bundle))
    assert recorded == [dict(p) for p in portfolio.seeded(cnn, learned).starting_points]
    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}")
    first_two = sorted(study.trials, key=lambda t: t.number)[:2]
    for trial, point in zip(first_two, recorded):
        point = {k: v for k, v in point.items() if k != "flip"}
        assert {k: trial.params[k] for k in point} == point


def test_every_epoch_reports_the_metrics(digits_search):
    _, folder, _ = digits_search
    for trial in (folder / "tune").glob("trial_*"):
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        trained = [r for r in rows if r.get("epoch", 0) > 0]
        for row in trained:
            assert REPORTED <= set(row), set(REPORTED) - set(row)
        # only epochs that beat the trial's best are checkpointed, and only the best is kept
        assert len(list(trial.glob("checkpoint_*"))) <= 1


def test_optuna_study_has_every_trial(digits_search):
    _, folder, _ = digits_search
    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(study.trials) == 4
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 1


def test_best_prints_config(digits_search):
    results, folder, _ = digits_search
    run = run_in_process("best", "--results", str(results), "--name", folder.name)
    assert run.returncode == 0 and "best trial" in run.stdout and "cnn.depth = " in run.stdout


def test_retrain_writes_artifacts(retrained, search_bundle):
    final, run = retrained
    assert "test accuracy" in run.stdout
    assert {"model.pt", "metrics.json", "predictions.csv", "confusion_matrix.csv"} <= {p.name for p in final.iterdir()}
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["test_images"] == len(search_bundle.test) == 360
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and len(metrics["per_class"]) == 10
    assert set(metrics["per_class"]["3"]) == {"precision", "recall", "f1", "support"}
    predictions = pd.read_csv(final / "predictions.csv")
    assert list(predictions.columns) == ["ImageId", "Label"]
    assert predictions["ImageId"].tolist() == list(range(1, 361))
    assert predictions["Label"].between(0, 9).all()
    matrix = pd.read_csv(final / "confusion_matrix.csv", index_col=0)
    assert matrix.shape == (10, 10) and matrix.to_numpy().sum() == 360
    accuracy = np.trace(matrix.to_numpy()) / 360
    assert accuracy == pytest.approx(metrics["test_accuracy"])


@pytest.mark.extended
def test_starting_points_retrain_beside_the_best(digits_search, retrained, tmp_path):
    """`best --retrain --starting-points`: every hand-made starting point that is not the best
    (the search's first 3 trials are the cnn space's 3 starting points) retrained into
    final-<id>/ with the config Tune recorded, and compared with the best in the report's table.
    Run on a copy of the shared experiment: it retrains the best into final/ again."""
    import shutil

    from digitsearch.store.trials import starting_point_trials
    from digitsearch.viz import report

    _, shared, _ = digits_search
    results = tmp_path / "results"
    folder = Path(shutil.copytree(shared, results / shared.name, ignore=shutil.ignore_patterns("final*", "report")))
    starts = starting_point_trials(folder)
    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}")
    keras_params = sorted(study.trials, key=lambda t: t.number)[0].params
    keras = next(t for t, k in starts.items() if k == 1)
    assert sorted(starts.values()) == [1, 2, 3, 4]
    # params.json holds the constants too: flip, fixed off on the digits, which the study does not sample
    stored = json.loads((folder / "tune" / f"trial_{keras}" / "params.json").read_text())
    assert stored == {**keras_params, "flip": False}
    run = run_in_process("best", "--results", str(results), "--name", folder.name, "--retrain", "--starting-points",
                  "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    # the searched best is the trial the retrain picked (final/), which may go before best.json's
    best = json.loads((folder / "final" / "metrics.json").read_text())["trial_id"]
    if best in starts:
        assert f"starting point {starts[best]} (trial {best}): the best itself; not retrained" in run.stdout
    table = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str}).set_index("trial_id")
    for trial_id in starts:
        if trial_id == best:
            continue
        metrics = json.loads((folder / f"final-{trial_id}" / "metrics.json").read_text())
        assert metrics["trial_id"] == trial_id and metrics["epochs"] == 1 and metrics["test_images"] == 360
        model, _ = export.load_model(folder / f"final-{trial_id}" / "model.pt")
        # the trial's own net, not the best's
        assert sum(p.numel() for p in model.parameters()) == table.loc[trial_id, "n_params"]
        assert (folder / "tensorboard" / f"final-{trial_id}").is_dir()
    compared = report.retrained_md(folder, table.reset_index()).splitlines()
    assert compared[0] == "| model | trial | family | parameters | epochs | s/epoch | test accuracy |"
    searched = f"searched best (starting point {starts[best]})" if best in starts else "searched best"
    assert compared[2].startswith(f"| {searched} | {best} |")
    assert len(compared) == 2 + 1 + len(set(starts) - {best})
    if keras != best:
        row = next(line for line in compared if line.startswith("| starting point 1 |"))
        assert f"| {keras} | cnn | 435,754 | 1 |" in row  # the recipe net


def test_best_shows_any_trial_and_refuses_an_unknown_one(digits_search):
    results, folder, _ = digits_search
    trial_id = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str})["trial_id"].iloc[-1]
    shown = run_in_process("best", "--results", str(results), "--name", folder.name, "--trial", trial_id)
    assert shown.returncode == 0 and f"trial {trial_id}, val_acc" in shown.stdout and "cnn.depth = " in shown.stdout
    unknown = run_in_process("best", "--results", str(results), "--name", folder.name, "--trial", "nosuch")
    assert unknown.returncode == 2
    assert_one_line_error(unknown.stderr, "no trial 'nosuch'")


def test_best_on_a_trial_that_never_trained_says_so(digits_search, tmp_path):
    """`best --trial ID` shows an errored trial (no val_acc: "-"); `--retrain` of it is one line."""
    import shutil

    _, shared, _ = digits_search
    folder = tmp_path / "results" / shared.name
    shutil.copytree(shared, folder, ignore=shutil.ignore_patterns("final*", "report", "tensorboard"))
    table = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str, "note": "object"})
    broken = table["trial_id"].iloc[-1]
    table.loc[table.index[-1], ["status", "val_acc", "note"]] = ["error", float("nan"), "ValueError: boom"]
    table.to_csv(folder / "leaderboard.csv", index=False)
    shown = run_in_process("best", "--results", str(folder.parent), "--trial", broken)
    assert shown.returncode == 0 and f"trial {broken}, val_acc - at epoch" in shown.stdout, shown.stderr
    refused = run_in_process("best", "--results", str(folder.parent), "--trial", broken, "--retrain")
    assert refused.returncode == 2
    assert_one_line_error(refused.stderr, f"trial {broken} ended as error: ValueError: boom", "no trained epoch")
    assert not (folder / f"final-{broken}").exists()


def test_model_file_describes_itself(retrained, search_bundle):
    final, _ = retrained
    raw = torch.load(final / "model.pt", weights_only=True)
    assert {"family", "model_args", "state_dict", "normalisation", "class_names"} <= set(raw)
    assert raw["family"] == "cnn" and raw["class_names"] == [str(i) for i in range(10)]
    model, meta = export.load_model(final / "model.pt")
    x = engine.to_tensors(search_bundle.test.images, None, meta["normalisation"]["mean"], meta["normalisation"]["std"])
    assert (engine.predict(model, x) == pd.read_csv(final / "predictions.csv")["Label"].to_numpy()).all()


def test_predict_command_on_a_csv(retrained, search_bundle, tmp_path):
    final, _ = retrained
    source = write_kaggle_csv(tmp_path / "mine.csv", search_bundle.test.images, search_bundle.test.labels)
    out = tmp_path / "submission.csv"
    run = run_in_process("predict", "--model", str(final / "model.pt"), "--input", str(source), "--output", str(out))
    assert run.returncode == 0, run.stderr
    assert "360 predictions" in run.stdout and "accuracy" in run.stdout
    assert pd.read_csv(out).equals(pd.read_csv(final / "predictions.csv"))


@pytest.mark.extended
def test_kaggle_csv_search_exports_test_predictions(tmp_path):
    """train.csv + unlabelled test.csv, as the Digit Recognizer competition gives them."""
    digits = load("digits")
    train = write_kaggle_csv(tmp_path / "train.csv", digits.train.images[:400], digits.train.labels[:400])
    test = write_kaggle_csv(tmp_path / "test.csv", digits.test.images[:50], None)
    results = tmp_path / "results"
    run = run_in_process("tune", "--dataset", str(train), "--test", str(test), "--trials", "2", "--max-epochs", "1",
                         "--results", str(results))
    assert run.returncode == 0, run.stdout + run.stderr
    (folder,) = list(results.iterdir())
    assert folder.name.startswith("cnn-train-")  # the default name: space-dataset-timestamp
    run = run_in_process("best", "--results", str(results), "--retrain")
    assert run.returncode == 0, run.stdout + run.stderr
    predictions = pd.read_csv(folder / "final" / "predictions.csv")
    assert len(predictions) == 50 and predictions["ImageId"].iloc[0] == 1
    assert "test_accuracy" not in json.loads((folder / "final" / "metrics.json").read_text())


@pytest.mark.extended
def test_search_with_no_usable_trial_then_best_refuses(tmp_path):
    """Every config is infeasible: the search records why, and `best` says there is nothing to retrain."""
    space = tmp_path / "collapse.yaml"
    blocks = "".join(f"  cnn.filters_{k}: 8\n  cnn.pool_{k}: max\n" for k in range(1, 6))
    space.write_text("family: cnn\nparams:\n  cnn.depth: {type: choice, values: [5]}\n"
                     f"{blocks}  cnn.kernel: 5\n  cnn.padding: valid\n")
    results = tmp_path / "results"
    run = run_in_process("tune", "--space", str(space), "--trials", "2", "--max-epochs", "1", "--results",
                         str(results), "--name", "collapse")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no trial completed" in run.stdout
    table = pd.read_csv(results / "collapse" / "leaderboard.csv")
    assert (table["status"] == "infeasible").all() and table["note"].str.contains("shrinks").all()
    refused = run_in_process("best", "--results", str(results), "--retrain")
    assert refused.returncode == 2
    assert_one_line_error(refused.stderr, "no completed trial")


STEP_SPACE = """family: cnn
params:
  cnn.depth: {type: choice, values: [1]}
  cnn.filters_1: {type: choice, values: [8, 16, 32]}
  cnn.pool_1: {type: choice, values: [max, avg]}
  lr: {type: loguniform, low: 1.0e-3, high: 1.0e-2}
start:
  - {cnn.filters_1: 8, cnn.pool_1: max, lr: 0.003}
"""


@pytest.mark.extended
def test_a_search_takes_local_steps_from_its_best_trial(tmp_path):
    """One trial at a time, seed 0: the starting point runs first and completes; study trial 2 is
    then a local step from it (search/mutation.py draws that for trial 2 of seed 0), named so
    in the leaderboard and the study."""
    space = tmp_path / "steps.yaml"
    space.write_text(STEP_SPACE)
    results = tmp_path / "results"
    run = run_in_process("tune", "--space", str(space), "--trials", "3", "--max-epochs", "1", "--max-concurrent", "1",
                         "--seed", "0", "--results", str(results), "--name", "steps")
    assert run.returncode == 0, run.stdout + run.stderr
    study = optuna.load_study(study_name="steps", storage=f"sqlite:///{results / 'steps' / 'optuna.db'}")
    start, _, step = sorted(study.trials, key=lambda t: t.number)
    assert start.state == optuna.trial.TrialState.COMPLETE and step.user_attrs["step_from"] == start.user_attrs[
        "tune_trial_id"]
    changed = {name for name in start.params if step.params.get(name) != start.params[name]}
    assert 1 <= len(changed) <= 2 and changed == set(step.user_attrs["step_changes"])
    table = pd.read_csv(results / "steps" / "leaderboard.csv").set_index("trial_id")
    origin = table.loc[step.user_attrs["tune_trial_id"], "origin"]
    assert origin == f"step from start 1 ({', '.join(sorted(changed))})", origin


def test_usage_errors_are_one_line():
    run = run_cli("tune", "--trials", "abc")
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "--trials")


@pytest.mark.extended
def test_ctrl_c_keeps_what_finished(tmp_path):
    """SIGINT mid-search (the driver sends it itself as Tune snapshots the first trial's end: the
    fault search.callbacks.faults injects): Ray stops the trials, the leaderboard still gets every
    finished trial."""
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", FAULT_VARIABLE: "interrupt-after-trial-end"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "tune", "--trials", "8", "--max-epochs", "3",
                           "--scheduler", "fifo", "--name", "cut", "--results", str(results)],
                          capture_output=True, text=True, env=env, timeout=300)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 130, err
    assert "interrupted after" in out
    meta = json.loads((results / "cut" / "experiment.json").read_text())
    assert meta["status"] == "interrupted"
    table = pd.read_csv(results / "cut" / "leaderboard.csv")
    assert (table["status"] == "completed").sum() >= 1
    assert (results / "cut" / "best.json").is_file()
