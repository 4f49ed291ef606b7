"""A trial whose worker dies mid-search is restarted by Tune from its checkpoint: it goes on at
the epoch after its best one (the only one checkpointed), with that epoch's weights, optimizer,
schedule and sampler, not from epoch 1 and not from the epoch it had reached."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import ROOT

EPOCHS = 24  # about 0.3 s each; Tune logs results about once a second: room for the kill to land mid-trial
KILL_AFTER = 4  # epochs logged before the worker is killed
# one small net whose learning rate all but stops after epoch 2 (x1e-9 every 2 epochs): its
# val_acc stays put from epoch 3, so its best epoch, and its checkpoint, is 1 or 2
STALLING_SPACE = """\
family: cnn
description: A small cnn that stops learning after epoch 2.
params:
  cnn.depth: 1
  cnn.filters_1: 8
  cnn.batchnorm: false
  optimizer: adam
  lr: 0.01
  lr_decay: 1.0e-9
  decay_every: 2
  batch_size: {type: choice, values: [16, 32]}
"""


def _results(folder: Path) -> list[dict]:
    """Every result Tune logged for the search's one trial, in order (restarts append)."""
    logged = list(folder.rglob("result.json"))
    if not logged:
        return []
    return [json.loads(line) for line in logged[0].read_text().splitlines() if line.strip()]


def _trial_worker(results: list[dict]) -> psutil.Process | None:
    """The process that trained the last logged result (Tune records its pid in each result; the
    worker belongs to whichever Ray the search joined, the suite's kept-up one or its own)."""
    try:
        worker = psutil.Process(results[-1]["pid"])
        return worker if " ".join(worker.cmdline()).startswith("ray::ImplicitFunc") else None
    except (psutil.Error, KeyError, IndexError):
        return None


def _kill_worker_after(driver: subprocess.Popen, folder: Path, epochs: int) -> None:
    """SIGKILL the trial's worker once `epochs` results are logged, as a lost machine would."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        results = _results(folder)
        if len(results) >= epochs and (worker := _trial_worker(results)):
            worker.send_signal(signal.SIGKILL)
            return
        time.sleep(0.05)
    pytest.fail(f"the trial never reached epoch {epochs} with a worker to kill")


@pytest.fixture(scope="module")
def restarted(tmp_path_factory) -> tuple[list[dict], str, Path]:
    base = tmp_path_factory.mktemp("restart")
    space = base / "stalling.yaml"
    space.write_text(STALLING_SPACE)
    folder = base / "results" / "r"
    with open(base / "driver.log", "w") as out:
        driver = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "tune", "--space", str(space), "--trials", "1",
             "--max-epochs", str(EPOCHS), "--scheduler", "fifo", "--results", str(folder.parent), "--name", "r"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT)
        try:
            _kill_worker_after(driver, folder, KILL_AFTER)
            driver.wait(300)
        finally:
            if driver.poll() is None:
                driver.kill()
    log = (base / "driver.log").read_text()
    assert driver.returncode == 0, log
    return _results(folder), log, folder


def test_the_restarted_trial_goes_on_after_its_best_epoch(restarted):
    results, log, _ = restarted
    epochs = [r["epoch"] for r in results]
    # where the epochs go back: the restart
    restart = next((k for k in range(1, len(epochs)) if epochs[k] <= epochs[k - 1]), None)
    assert restart is not None, f"no restart in the logged epochs {epochs} (the kill came too late?)\n{log}"
    before, after = results[:restart], results[restart:]
    best = before[-1]["best_epoch"]
    assert [r["epoch"] for r in before] == list(range(1, len(before) + 1)) and len(before) >= KILL_AFTER
    assert best <= 2 < len(before)  # the stalled epochs after the best were never checkpointed
    assert [r["epoch"] for r in after] == list(range(best + 1, EPOCHS + 1)), log
    # the best epoch's state came back: the same epoch trains the same batches on the same weights
    assert after[0]["train_loss"] == pytest.approx(before[best]["train_loss"], rel=1e-5)
    assert after[0]["best_val_acc"] >= before[-1]["best_val_acc"] and after[-1]["best_epoch"] <= 2


def test_the_leaderboard_shows_one_finished_trial_with_every_epoch(restarted):
    folder = restarted[2]
    table = pd.read_csv(folder / "leaderboard.csv")
    assert len(table) == 1 and table.loc[0, "status"] == "completed"
    assert table.loc[0, "epochs"] == EPOCHS
