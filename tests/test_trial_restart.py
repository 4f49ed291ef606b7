"""A trial whose worker dies mid-search is restarted by Tune from its checkpoint: it goes on at
the epoch after its best one (the only one checkpointed), with that epoch's weights, optimizer,
schedule and sampler, not from epoch 1 and not from the epoch it had reached."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from digitsearch.search.callbacks.faults import TRIAL_FAULT_VARIABLE

pytestmark = [pytest.mark.e2e, pytest.mark.extended]

EPOCHS = 8
KILL_AFTER = 4  # the trial's worker kills itself once this epoch is logged (DIGITSEARCH_TRIAL_FAULT)
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
    """Every result Tune kept for the search's one trial, in order. When Tune restores a trial from
    a checkpoint it keeps the results up to that checkpoint's epoch and logs on from there."""
    logged = list(folder.rglob("result.json"))
    if not logged:
        return []
    return [json.loads(line) for line in logged[0].read_text().splitlines() if line.strip()]


def _search(base: Path, name: str, fault: str | None) -> tuple[list[dict], str, Path]:
    """The stalling space's one trial (its config and seed the same in every search)."""
    space = base / "stalling.yaml"
    space.write_text(STALLING_SPACE)
    folder = base / "results" / name
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({TRIAL_FAULT_VARIABLE: fault} if fault else {})}
    driver = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "tune", "--space", str(space), "--trials", "1",
         "--max-epochs", str(EPOCHS), "--scheduler", "fifo", "--results", str(folder.parent), "--name", name],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT, timeout=300)
    assert driver.returncode == 0, driver.stdout
    return _results(folder), driver.stdout, folder


@pytest.fixture(scope="module")
def restarted(tmp_path_factory) -> tuple[list[dict], str, Path]:
    # the worker SIGKILLs itself once the driver has logged its epoch KILL_AFTER (and so registered
    # the best epoch's checkpoint), as a lost process would: search.callbacks.faults
    return _search(tmp_path_factory.mktemp("restart"), "r", f"die-after-epoch:{KILL_AFTER}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    return _search(tmp_path_factory.mktemp("whole"), "w", None)[0]


def test_the_restarted_trial_goes_on_after_its_best_epoch(restarted, uninterrupted):
    results, log, _ = restarted
    pids = [r["pid"] for r in results]
    # where the worker changes: the restart
    restart = next((k for k in range(1, len(pids)) if pids[k] != pids[k - 1]), None)
    assert restart is not None, f"no restart in the logged results {pids}\n{log}"
    before, after = results[:restart], results[restart:]
    best = after[0]["epoch"] - 1
    assert 1 <= best <= 2 < KILL_AFTER  # its best epoch: the stalled epochs after it were never checkpointed
    # Tune keeps the dead worker's results, or only those up to the checkpoint it restores from
    assert [r["epoch"] for r in before] in (list(range(1, KILL_AFTER + 1)), list(range(1, best + 1))), log
    assert before[-1]["best_epoch"] == best
    # not from epoch 1, not from the epoch it had reached: from the checkpoint, counting afresh
    assert [r["epoch"] for r in after] == list(range(best + 1, EPOCHS + 1)), log
    assert [r["iterations_since_restore"] for r in after] == list(range(1, EPOCHS - best + 1))
    # the best epoch's state came back: each epoch after it trains the same batches on the same
    # weights as in the search whose worker never died
    for resumed, whole in zip(after, uninterrupted[best:]):
        assert resumed["epoch"] == whole["epoch"]
        assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-5), (resumed["epoch"], log)
    assert after[-1]["best_epoch"] <= 2 and after[-1]["best_val_acc"] == uninterrupted[-1]["best_val_acc"]


def test_the_leaderboard_shows_one_finished_trial_with_every_epoch(restarted):
    folder = restarted[2]
    table = pd.read_csv(folder / "leaderboard.csv")
    assert len(table) == 1 and table.loc[0, "status"] == "completed"
    assert table.loc[0, "epochs"] == EPOCHS
