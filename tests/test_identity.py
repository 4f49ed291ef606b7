"""An experiment's identity: the study's name and the data's fingerprint in experiment.json.

A copied, renamed or moved experiment folder is still the same experiment (report, best,
best --retrain, --resume read its own files and its own study); data that changed since the
search are named part by part, and `best --retrain` refuses them unless told to accept them.
"""
from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from killdriver import run_with_fault
from typer.testing import CliRunner

from conftest import RAN, assert_one_line_error, run_cli, run_in_process, write_kaggle_csv
from digitsearch.cli import app
from digitsearch.data import Bundle, Split, fingerprint, load
from digitsearch.store.trials import experiment_space

runner = CliRunner()


# searches run in this process share one Ray, gone when the file is done
pytestmark = pytest.mark.usefixtures("ray_per_file")


def _cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _with(bundle: Bundle, **parts: Split) -> Bundle:
    return Bundle(bundle.name, parts.get("train", bundle.train), parts.get("val", bundle.val),
                  parts.get("test", bundle.test), bundle.class_names)


def _edited(split: Split, images=None, labels=None) -> Split:
    return Split(split.images.copy() if images is None else images, split.labels.copy() if labels is None else labels)


# --- the fingerprint, part by part ------------------------------------------------------------

def test_the_same_data_loaded_again_have_the_same_fingerprint(digits_bundle):
    assert fingerprint.changes(fingerprint.of(digits_bundle), fingerprint.of(load("digits"))) == []


def test_each_changed_part_is_named(digits_bundle):
    recorded = fingerprint.of(digits_bundle)
    train = digits_bundle.train
    pixel = _edited(train)
    pixel.images[0, 14, 14] ^= 0xFF
    label = _edited(train)
    label.labels[0] = (label.labels[0] + 1) % 10
    reordered = train.subset(np.arange(len(train))[::-1])
    test = _edited(digits_bundle.test)
    test.images[0, 0, 0] ^= 0xFF
    cases = {
        "the training images changed": _with(digits_bundle, train=pixel),
        "the training labels changed": _with(digits_bundle, train=label),
        "the order of the examples changed": _with(digits_bundle, train=reordered),
        "the test images changed": _with(digits_bundle, test=test),
    }
    for needle, bundle in cases.items():
        found = fingerprint.changes(recorded, fingerprint.of(bundle))
        assert len(found) == 1 and found[0].startswith(needle), (needle, found)


def test_another_split_of_the_same_examples_is_a_split_change(digits_bundle):
    # another validation share: the same pool and test set, divided differently
    other = load("digits", val_fraction=0.2)
    assert fingerprint.changes(fingerprint.of(digits_bundle), fingerprint.of(other)) == [
        "the split changed (the same examples, divided differently between train, validation and test)"]


# --- a copied experiment reads its own files ------------------------------------------------

@pytest.fixture(scope="module")
def copied(shared_search, tmp_path_factory):
    """The shared search's folder copied under another name, into another results folder."""
    results = tmp_path_factory.mktemp("copies") / "results"
    results.mkdir()
    copy = results / "copied"
    shutil.copytree(shared_search.folder, copy, ignore=shutil.ignore_patterns("report", "final*"))
    return copy


@pytest.mark.e2e
def test_a_copied_experiment_reads_its_own_rounds_and_study(copied, shared_search):
    from digitsearch.search.reconcile import ran_trials
    from digitsearch.store import experiments, study, trials

    meta = experiments.read_meta(copied)
    assert meta["name"] == "copied" and meta["study_name"] == shared_search.folder.name
    assert meta["tune_root"] == str(copied.resolve())
    dirs = trials.trial_dirs(copied)
    assert dirs and all(copied.resolve() in path.resolve().parents for path in dirs.values())
    assert len(ran_trials(study.load(copied))) == len(dirs)  # skipped configs are no trials (search.feasible)


@pytest.mark.e2e
def test_report_and_best_work_on_a_copied_experiment(copied):
    shown = _cli("best", "--results", str(copied.parent), "--name", "copied")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("experiment copied: best trial ")
    reported = _cli("report", "--results", str(copied.parent), "--name", "copied")
    assert reported.exit_code == 0, reported.output
    text = (copied / "report" / "report.md").read_text()
    assert "# Search report: copied" in text and "importances" in text


@pytest.mark.extended
@pytest.mark.e2e
def test_best_retrain_on_a_copy_checks_and_records_the_data(copied):
    done = run_in_process("best", "--results", str(copied.parent), "--name", "copied", "--retrain", "--epochs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((copied / "final" / "metrics.json").read_text())
    assert metrics["data_fingerprint"] == json.loads((copied / "experiment.json").read_text())["data_fingerprint"]
    assert "data_changed" not in metrics and "warning" not in done.stderr


@pytest.mark.extended
@pytest.mark.e2e
def test_an_experiment_without_a_fingerprint_retrains_unchecked_and_says_so(copied, tmp_path):
    old = tmp_path / "results" / "old"
    shutil.copytree(copied, old, ignore=shutil.ignore_patterns("report", "final*"))
    meta = json.loads((old / "experiment.json").read_text())
    # as experiments written before either existed (and before the record had a schema_version)
    del meta["data_fingerprint"], meta["study_name"], meta["schema_version"]
    meta["name"] = copied.name  # ... whose study was named after the folder at the time
    (old / "experiment.json").write_text(json.dumps(meta))
    (old / "best.json").write_text((copied / "best.json").read_text())
    done = run_in_process("best", "--results", str(old.parent), "--name", "old", "--retrain", "--epochs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: this experiment recorded no data fingerprint" in done.stdout
    assert (old / "final" / "model.pt").is_file()


# --- best --retrain on changed data -----------------------------------------------------------

@pytest.fixture(scope="module")
def csv_search(tmp_path_factory, digits_bundle):
    """A 1-trial, 1-epoch search on a Kaggle-style CSV, which the tests below then edit."""
    root = tmp_path_factory.mktemp("csv")
    images = np.concatenate([digits_bundle.train.images, digits_bundle.val.images])
    labels = np.concatenate([digits_bundle.train.labels, digits_bundle.val.labels])
    csv = write_kaggle_csv(root / "train.csv", images, labels)
    done = run_in_process("tune", "--dataset", str(csv), "--trials", "1", "--max-epochs", "1", "--results",
                          str(root / "results"), "--name", "csv", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "results", csv


@pytest.mark.extended
@pytest.mark.e2e
def test_retrain_on_an_edited_csv_is_refused_then_accepted_when_asked(csv_search):
    import pandas as pd

    results, csv = csv_search
    table = pd.read_csv(csv)
    table.loc[3, "label"] = (table.loc[3, "label"] + 1) % 10
    table.to_csv(csv, index=False)
    refused = _cli("best", "--results", str(results), "--name", "csv", "--retrain", "--epochs", "1")
    assert refused.exit_code == 2, refused.output
    # one label: the test set carved (stratified) from the same file moves with it
    assert_one_line_error(refused.stderr, "the labels changed (and the split with them)", "--accept-changed-data")
    assert not (results / "csv" / "final").exists()  # refused before any epoch

    accepted = run_in_process("best", "--results", str(results), "--name", "csv", "--retrain", "--epochs", "1",
                              "--accept-changed-data")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "warning: retraining on changed data (the labels changed (and the split with them))" in accepted.stderr
    metrics = json.loads((results / "csv" / "final" / "metrics.json").read_text())
    assert metrics["data_changed"] == ["the labels changed (and the split with them)"]
    assert metrics["data_fingerprint"] != json.loads((results / "csv" / "experiment.json").read_text())[
        "data_fingerprint"]


def test_accept_changed_data_needs_retrain():
    result = _cli("best", "--accept-changed-data")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "--accept-changed-data goes with --retrain")


# --- --resume on a renamed experiment ---------------------------------------------------------

def _study_trials(folder: Path) -> list[tuple[str, str, int]]:
    """(study, state, count) of the study trials Tune ran: not the configs the searcher skipped
    before training (user attr 'skipped', search/feasible.py)."""
    with sqlite3.connect(folder / "optuna.db") as db:
        return db.execute("select s.study_name, t.state, count(*) from trials t join studies s using (study_id) "
                          f"where t.{RAN} group by 1, 2").fetchall()


def _ended(text: str) -> int:
    return sum(line.startswith("[") for line in text.splitlines())


@pytest.mark.extended
@pytest.mark.e2e
def test_a_killed_search_moved_and_renamed_finishes_there_in_its_own_study(tmp_path):
    """Ray pickles the searcher (with optuna.db's path) and its trials' storage: after a move,
    the restored round must write the new folder's study and trials, not the old place's; and
    --add-trials then continues the same study under the folder's new name."""
    results, log = tmp_path / "results", tmp_path / "driver.log"
    # the driver kills itself as Tune saves its snapshot after the first trial's end (the fault
    # search.callbacks.faults injects): one trial ended, the others not yet
    code, _ = run_with_fault(["tune", "--trials", "3", "--max-epochs", "2", "--max-concurrent", "1", "--results",
                              str(results), "--name", "k"], results / "k", log, "kill-after-trial-end")
    assert code == -signal.SIGKILL, log.read_text()
    assert 1 <= _ended(log.read_text()) < 3, log.read_text()
    moved = tmp_path / "elsewhere" / "results"
    moved.mkdir(parents=True)
    (results / "k").rename(moved / "renamed")
    resumed = run_cli("tune", "--results", str(moved), "--name", "renamed", "--resume", "--add-trials", "1",
                      "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.strip().startswith("best: ") and len(resumed.stdout.strip().splitlines()) == 1  # --quiet
    folder = moved / "renamed"
    # the first round's 3 and the added one, one study (ASHA-stopped trials are PRUNED)
    assert {name for name, _, _ in _study_trials(folder)} == {"k"}
    assert sum(n for _, state, n in _study_trials(folder) if state in ("COMPLETE", "PRUNED")) == 4
    meta = json.loads((folder / "experiment.json").read_text())
    assert (meta["name"], meta["study_name"], meta["tune_root"]) == ("renamed", "k", str(folder))
    assert len(list((folder / "tune-2").glob("trial_*"))) == 1
    assert list(results.iterdir()) == []  # nothing written at the old place


@pytest.mark.e2e
def test_resume_after_the_space_file_was_edited_is_one_line(shared_search, tmp_path):
    """The space is part of what a search is: its fingerprint is recorded, and a --resume whose
    space file no longer describes it is refused before anything runs (the study's history and
    its starting points would belong to another space)."""
    from digitsearch import spaces

    folder = tmp_path / "results" / "edited"
    shutil.copytree(shared_search.folder, folder, ignore=shutil.ignore_patterns("report", "final*"))
    space_file = tmp_path / "my_cnn.yaml"
    shutil.copy(spaces.BUILTIN_DIR / "cnn.yaml", space_file)
    meta = json.loads((folder / "experiment.json").read_text())
    assert meta["space_fingerprint"] == experiment_space(meta).fingerprint()  # recorded by tune
    meta.update(space_path=str(space_file), status="interrupted")  # a search of this file, cut short
    (folder / "experiment.json").write_text(json.dumps(meta))
    space_file.write_text(space_file.read_text().replace("cnn.depth:         {type: int, low: 1, high: 5}",
                                                         "cnn.depth:         {type: int, low: 1, high: 4}"))
    refused = _cli("tune", "--results", str(folder.parent), "--name", "edited", "--resume")
    assert refused.exit_code == 2, refused.output
    assert_one_line_error(refused.stderr, "cannot resume 'edited'", f"its space file {space_file} changed",
                          "put the file back as it was")
