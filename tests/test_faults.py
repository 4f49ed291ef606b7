"""Searches that survive faults, on a private local Ray: a driver killed mid-search and
`--resume`, `--resume --add-trials`, trials that raise or diverge, best-only checkpoints."""
from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from killdriver import run_with_fault
from typer.testing import CliRunner

from conftest import RAN, assert_one_line_error, run_cli, run_in_process
from digitsearch.cli import app

TRIALS, EPOCHS = 5, 2


def _study_trials(folder: Path, state: str = "COMPLETE") -> int:
    """Study trials in `state` that Tune ran: a config the searcher skipped before training (user
    attr 'skipped', search/feasible.py) is COMPLETE in the study, but no trial."""
    with sqlite3.connect(folder / "optuna.db") as db:
        return db.execute(f"select count(*) from trials where state = ? and {RAN}", (state,)).fetchone()[0]


def _ended_lines(output: str) -> list[str]:
    """The trial ids of the progress lines `[n/total] <id>: ...`."""
    return [line.split("] ", 1)[1].split(":", 1)[0] for line in output.splitlines() if line.startswith("[")]


# searches run in this process share one Ray, gone when the file is done
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_per_file")]  # the searches share one Ray


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A 5-trial search whose driver is SIGKILLed after two trials ended, then --resume.
    Tune's state goes to --storage, given as a URI (pyarrow's file://), as on a cluster."""
    results = tmp_path_factory.mktemp("faults") / "results"
    storage = results.parent / "shared"
    log = results.parent / "driver.log"
    # the driver kills itself as Tune saves its first snapshot after the second trial end: that
    # snapshot's predecessor, in storage, still has the second trial running (and a trial that
    # started and ended in between is a ghost: test_ghosts); the resume makes all count once.
    # (Killed from outside once two ends were printed, CI once saw all five end first.)
    first = ["tune", "--trials", str(TRIALS), "--max-epochs", str(EPOCHS), "--results", str(results), "--name", "k",
             "--storage", storage.as_uri()]
    code, _ = run_with_fault(first, results / "k", log, "kill-after-trial-end:2")
    before = log.read_text()
    assert code == -signal.SIGKILL, before
    ended_before = _ended_lines(before)
    assert 2 <= len(ended_before) < TRIALS, before
    resumed = run_cli("tune", "--results", str(results), "--name", "k", "--resume")
    return results / "k", ended_before, resumed, storage / "k"


def test_a_killed_driver_resumes_and_finishes_the_search(killed_and_resumed):
    folder, ended_before, resumed, _ = killed_and_resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(ended_before)} of {TRIALS} trials had finished" in resumed.stdout
    table = pd.read_csv(folder / "leaderboard.csv")
    assert len(table) == TRIALS  # the total is what was asked: nothing lost, nothing extra
    assert set(ended_before) <= set(table["trial_id"])
    assert not set(ended_before) & set(_ended_lines(resumed.stdout))  # finished trials were not run again
    assert set(_ended_lines(resumed.stdout)) | set(ended_before) == set(table["trial_id"])
    assert (table["status"] != "interrupted").all()
    # the searcher kept its history in the same study (ASHA-stopped trials are PRUNED)
    assert _study_trials(folder) + _study_trials(folder, "PRUNED") == TRIALS
    # one the searcher asked for just before the kill, that Tune never saw, is marked failed
    assert _study_trials(folder, "RUNNING") == 0
    assert (folder / "best.json").is_file()


def test_only_the_best_epoch_checkpoint_is_kept_and_the_leaderboard_points_at_it(killed_and_resumed):
    folder, storage = killed_and_resumed[0], killed_and_resumed[3]
    assert not (folder / "tune").exists()  # trials and checkpoints went to --storage
    table = pd.read_csv(folder / "leaderboard.csv").fillna({"checkpoint": ""})
    for row in table.itertuples():
        kept = list((storage / "tune" / f"trial_{row.trial_id}").glob("checkpoint_*"))
        assert len(kept) <= 1, kept
        if row.epochs > 0:
            assert [str(p) for p in kept] == [row.checkpoint]


@pytest.mark.extended
def test_add_trials_extends_the_finished_search_in_the_same_study(killed_and_resumed):
    folder = killed_and_resumed[0]
    again = CliRunner().invoke(app, ["tune", "--results", str(folder.parent), "--name", "k", "--resume"])
    assert again.exit_code == 2
    assert_one_line_error(again.stderr, "already finished", "--add-trials")
    more = run_cli("tune", "--results", str(folder.parent), "--name", "k", "--resume", "--add-trials", "2", "--quiet")
    assert more.returncode == 0, more.stdout + more.stderr
    # --quiet prints the outcome only: no progress lines, no table, nothing on stderr
    lines = [line for line in more.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("best: ") and "--name k --retrain" in lines[0], more.stdout
    assert more.stderr.strip() == ""
    table = pd.read_csv(folder / "leaderboard.csv")
    assert len(table) == TRIALS + 2
    assert len(list((killed_and_resumed[3] / "tune-2").glob("trial_*"))) == 2  # the new round, beside the first
    assert _study_trials(folder) + _study_trials(folder, "PRUNED") == TRIALS + 2  # TPE went on with the stored study


FAULTY_SPACE = """\
family: cnn
description: One trial raises (3 input channels for gray images), one diverges, one trains.
params:
  cnn.depth: 1
  cnn.filters_1: 8
  # builds (on the meta device too), then fails on the first batch: preflight cannot know
  cnn.in_channels: {type: choice, values: [3, 1]}
  optimizer: sgd
  momentum: 0.5
  lr: {type: choice, values: [0.04, 1.0e+8, 0.05]}
start:
  - {cnn.in_channels: 3, lr: 0.04}
  - {cnn.in_channels: 1, lr: 1.0e+8}
  - {cnn.in_channels: 1, lr: 0.05}
"""


@pytest.mark.extended
def test_a_trial_that_raises_or_diverges_is_recorded_and_the_search_goes_on(tmp_path):
    space = tmp_path / "faulty.yaml"
    space.write_text(FAULTY_SPACE)
    run = run_in_process("tune", "--space", str(space), "--trials", "3", "--max-epochs", "2", "--results",
                         str(tmp_path / "results"), "--name", "f")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr  # the traceback is in the trial's error.txt
    table = pd.read_csv(tmp_path / "results" / "f" / "leaderboard.csv").set_index("lr")
    assert table.loc[0.04, "status"] == "error"
    assert "expected input" in table.loc[0.04, "note"] and "to have 3 channels" in table.loc[0.04, "note"]
    assert table.loc[1e8, "status"] == "diverged" and "non-finite" in table.loc[1e8, "note"]
    assert table.loc[0.05, "status"] == "completed"
    assert "error, retried once: RuntimeError:" in run.stdout
    errored = tmp_path / "results" / "f" / "tune" / f"trial_{table.loc[0.04, 'trial_id']}" / "error.txt"
    assert "Failure # 2" in errored.read_text()  # retried once, then recorded


def test_a_trial_the_killed_driver_asked_for_but_never_ran_is_marked_failed(tmp_path):
    import optuna

    from digitsearch.search.resume import fail_orphans

    folder = tmp_path / "exp"
    folder.mkdir()
    study = optuna.create_study(study_name="exp", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize")
    done = study.ask()
    study.tell(done, 0.9)
    study.ask()  # asked, then the driver died
    fail_orphans(folder)
    assert (_study_trials(folder), _study_trials(folder, "RUNNING"), _study_trials(folder, "FAIL")) == (1, 0, 1)
