"""A driver SIGKILLed within a second of a trial's end, again and again: every `--resume`
finishes, every trial counts once (ledger, leaderboard, Optuna study), and `--resume` through
Ray Client is refused in one line, leaving the experiment resumable."""
from __future__ import annotations

import json
import pickle
import shutil
import signal

import optuna
import pandas as pd
import pytest
from killdriver import ledger_lines, run_with_fault

from conftest import assert_one_line_error, run_cli
from digitsearch.search.reconcile import TUNE_TRIAL_ATTR, ran_trials
from digitsearch.search.whole_files import PARTIAL_PREFIX

pytestmark = [pytest.mark.e2e, pytest.mark.extended]

TRIALS, EPOCHS = 6, 3
# learning rates too small to move val_acc: each trial's best epoch (its one checkpoint) is
# its first, so a trial Tune restores after it ended reports its last epochs again, to a
# study trial that is already COMPLETE (the window of the issue)
FLAT_SPACE = """\
family: cnn
description: One tiny net whose val_acc never improves after the first epoch.
params:
  cnn.depth: 1
  cnn.filters_1: 8
  optimizer: sgd
  momentum: 0.0
  lr: {type: loguniform, low: 1.0e-12, high: 1.0e-10}
"""


@pytest.fixture(scope="module")
def killed_thrice(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    (root / "flat.yaml").write_text(FLAT_SPACE)
    results, log = root / "results", root / "drivers.log"
    folder, common = results / "k", ["--results", str(results), "--name", "k"]
    first = ["tune", "--space", str(root / "flat.yaml"), "--trials", str(TRIALS), "--max-epochs", str(EPOCHS),
             "--scheduler", "fifo", "--max-concurrent", "1", *common]
    # each driver kills itself as Tune saves its first snapshot after a new trial end: the resume
    # finds a trial ended (ledger, study) that the snapshot has running. (Killed from outside
    # a moment after the ledger line, CI's drivers missed that window all three times.)
    kills = [run_with_fault(first, folder, log, "kill-after-trial-end")]
    for _ in range(2):
        kills.append(run_with_fault(["tune", *common, "--resume"], folder, log, "kill-after-trial-end"))
    # a ray:// address (nothing listens on port 1) is refused before any connection, the
    # experiment left as it was: the final resume after it finishes
    refused = run_cli("tune", *common, "--resume", "--address", "ray://127.0.0.1:1")
    final = run_cli("tune", *common, "--resume")
    return folder, kills, log.read_text(), refused, final


def test_every_resume_after_a_kill_at_a_trials_end_finishes(killed_thrice):
    folder, kills, drivers, _, final = killed_thrice
    assert [code for code, _ in kills] == [-signal.SIGKILL] * 3, drivers  # each driver killed mid-search
    assert [lines for _, lines in kills] == sorted({lines for _, lines in kills}), kills  # each after a new end
    assert "Traceback" not in drivers and "UpdateFinishedTrialError" not in drivers
    assert final.returncode == 0, final.stdout + final.stderr
    assert "Traceback" not in final.stdout + final.stderr
    assert "best: " in final.stdout and (folder / "best.json").is_file()
    # the window was hit: a trial the ledger had as ended ran its last epochs again, counted once
    assert "had ended just before the driver stopped" in drivers + final.stdout, drivers + final.stdout


def test_each_trial_counts_once_in_the_ledger_the_leaderboard_and_the_study(killed_thrice):
    folder = killed_thrice[0]
    ids = [line.split("\t")[0] for line in ledger_lines(folder)]
    assert len(ids) == len(set(ids)) == TRIALS  # finished.txt: no trial twice
    table = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str})
    assert len(table) == TRIALS and table["trial_id"].is_unique and set(table["trial_id"]) == set(ids)
    assert set(table["status"]) == {"completed"}
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{folder / 'optuna.db'}")
    ran = ran_trials(study)
    assert sorted(t.user_attrs[TUNE_TRIAL_ATTR] for t in ran) == sorted(ids)  # one study trial per row
    # the trials the killed drivers had asked for but never ran went to the next trials:
    # the study holds exactly the leaderboard's trials, none left RUNNING
    assert len(study.trials) == TRIALS and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_resume_through_ray_client_is_refused_in_one_line(killed_thrice):
    refused = killed_thrice[3]
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert_one_line_error(refused.stderr, "--resume cannot run through Ray Client", "--address auto")
    assert refused.stdout == ""  # before anything ran: no data loaded, no Ray



def test_the_round_was_written_through_whole_files(killed_thrice):
    """Each file Tune copies to the round's folder is written whole (search.whole_files): CI
    once hit a kill during a copy, and the newest searcher-state-*.pkl it left empty ended the
    next --resume and, through Ray's failed restore, the round's trials."""
    folder = killed_thrice[0]
    tuner = pickle.loads((folder / "tune" / "tuner.pkl").read_bytes())
    assert tuner["_run_config"].storage_filesystem.type_name == "py::local-whole-files"
    assert not [p for p in (folder / "tune").rglob(f"{PARTIAL_PREFIX}*")]  # killed three times: none left


def test_a_snapshot_an_older_driver_cut_short_is_refused_before_ray_reads_it(killed_thrice, tmp_path):
    copy = tmp_path / "results" / "k"
    shutil.copytree(killed_thrice[0], copy)
    meta = json.loads((copy / "experiment.json").read_text())
    (copy / "experiment.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    newest = sorted((copy / "tune").glob("searcher-state-*.pkl"))[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # as pyarrow's in-place copy left it
    before = sorted(p.name for p in (copy / "tune").iterdir())
    refused = run_cli("tune", "--results", str(tmp_path / "results"), "--name", "k", "--resume")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert_one_line_error(refused.stderr, f"Tune's snapshot {newest} was cut short", "move that session's files")
    assert sorted(p.name for p in (copy / "tune").iterdir()) == before  # Ray wrote no empty snapshot after it


# one net that learns: its second epoch beats its first and replaces its checkpoint
LEARNING_SPACE = """\
family: cnn
description: One tiny net that learns, epoch after epoch.
params:
  cnn.depth: 1
  cnn.filters_1: 8
  optimizer: sgd
  momentum: 0.9
  lr: 0.05
"""


def test_a_kill_just_after_a_better_epoch_replaced_the_checkpoint_resumes_from_it(tmp_path):
    """The snapshot names the checkpoint the better epoch's deleted (CI: the trial failed its
    restore twice, ended FAIL, and the leaderboard pointed at the deleted checkpoint). Killed at
    epoch 2 of 2, the trial restored from it has nothing left to train: it says its last epoch
    again. (Mid-trial, it trains on from there as any restored trial: test_trial_restart.)"""
    epochs = 2
    from digitsearch.search.replaced_checkpoints import _named_checkpoints
    from digitsearch.search.whole_files import whole_file_storage

    (tmp_path / "learning.yaml").write_text(LEARNING_SPACE)
    results, log = tmp_path / "results", tmp_path / "driver.log"
    folder, common = results / "r", ["--results", str(results), "--name", "r"]
    first = ["tune", "--space", str(tmp_path / "learning.yaml"), "--trials", "1", "--max-epochs", str(epochs),
             "--scheduler", "fifo", *common]
    code, _ = run_with_fault(first, folder, log, "kill-after-replaced-checkpoint")
    assert code == -signal.SIGKILL, log.read_text()
    (trial_id, trial_dir, named), = _named_checkpoints(whole_file_storage(), str(folder / "tune"))
    assert not (folder / "tune" / trial_dir / named).exists()  # the window: the snapshot names a deleted one
    resumed = run_cli("tune", *common, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resume: {trial_id} had a better epoch just before the driver stopped" in resumed.stdout, resumed.stdout
    row = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str}).iloc[0]
    assert (row["trial_id"], row["status"], row["epochs"]) == (trial_id, "completed", epochs)
    assert [str(p) for p in (folder / "tune" / trial_dir).glob("checkpoint_*")] == [row["checkpoint"]]
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
