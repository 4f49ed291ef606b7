"""A driver killed at the worst moment, on purpose: fault injection for the tests of `--resume`.

The records a SIGKILL can leave out of step are written moments apart in one Tune step
(search.reconcile, search.replaced_checkpoints). A test that kills the driver from outside,
some time after it sees a trial end, hits those moments only by chance (CI's machine missed
all three of test_resume_kill's). With DIGITSEARCH_FAULT set, the driver SIGKILLs itself
there instead, exactly: as Tune saves its next snapshot (Callback.get_state, called while
the snapshot is written to the driver's staging folder, before it is copied to the round's)
after
  - `kill-after-trial-end`: a trial's end was recorded (ledger and Optuna study written);
    `kill-after-trial-end:N`: the N-th trial end this driver recorded;
  - `kill-after-replaced-checkpoint`: a trial's better epoch replaced its checkpoint (Tune
    registers it, deleting the old one, right after on_checkpoint);
  - `interrupt-after-trial-end`: as the first, with SIGINT (a user's Ctrl-C) instead of SIGKILL.
The round's folder then holds the snapshot from before that moment. Unset, nothing is added
to a search.

DIGITSEARCH_TRIAL_FAULT does the same to a trial after its epoch N:
  - `die-after-epoch:N`: the trial's worker SIGKILLs itself once the driver has logged epoch N
    (its line in the trial's result.json: the checkpoints before it are registered by then, so
    what the restart finds is known; a report alone returns before the driver has seen it), as
    a lost process would; a trial restored from a checkpoint does not die again;
  - `kill-node-after-epoch:N@NODE_ID`: a trial on node NODE_ID (a cluster's worker node) SIGKILLs
    that node's raylet, then itself, as its epoch N's report returns, as a lost machine would;
    elsewhere nothing happens.
The driver reads it and hands it to every trial (TrialRuntime.fault).
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from ray import tune

from digitsearch.errors import UserError

FAULT_VARIABLE = "DIGITSEARCH_FAULT"
FAULTS = ("kill-after-trial-end", "kill-after-replaced-checkpoint", "interrupt-after-trial-end")
AFTER_TRIAL_END = ("kill-after-trial-end", "interrupt-after-trial-end")
TRIAL_FAULT_VARIABLE = "DIGITSEARCH_TRIAL_FAULT"
TRIAL_FAULT = re.compile(r"(die-after-epoch):(\d+)|(kill-node-after-epoch):(\d+)@(\w+)")


def injected(ledger) -> list[tune.Callback]:
    """The callback the environment asks for (after `ledger` in the callback list), or none."""
    value = os.environ.get(FAULT_VARIABLE, "")
    if not value:
        return []
    fault, _, count = value.partition(":")
    if fault not in FAULTS or (count and (fault != FAULTS[0] or not count.isdigit() or int(count) < 1)):
        raise UserError(f"{FAULT_VARIABLE}={value!r}: expected {FAULTS[0]}[:N], {FAULTS[1]} or {FAULTS[2]}")
    return [KillDriver(fault, ledger, int(count or 1))]


class KillDriver(tune.Callback):
    def __init__(self, fault: str, ledger, ends: int = 1):
        self.fault, self.ledger = fault, ledger
        self.after = ledger.done + ends  # trials earlier drivers recorded, and the new ends to wait for
        self.checkpointed: set[str] = set()
        self.armed = False

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.fault in AFTER_TRIAL_END and self.ledger.done >= self.after:
            self.armed = True

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if self.fault == "kill-after-replaced-checkpoint" and trial.trial_id in self.checkpointed:
            self.armed = True
        self.checkpointed.add(trial.trial_id)

    def get_state(self):
        if self.armed:
            sent = signal.SIGINT if self.fault.startswith("interrupt") else signal.SIGKILL
            self.armed, self.fault = False, "fired"  # a SIGINT is sent once; the driver then winds down
            os.kill(os.getpid(), sent)
        return None


def trial_fault() -> str:
    """The trial fault the environment asks for ('' for none), checked where the driver starts."""
    value = os.environ.get(TRIAL_FAULT_VARIABLE, "")
    if value and not TRIAL_FAULT.fullmatch(value):
        raise UserError(f"{TRIAL_FAULT_VARIABLE}={value!r}: expected die-after-epoch:N or "
                        "kill-node-after-epoch:N@NODE_ID")
    return value


def after_epoch(fault: str, epoch: int, restored: bool, node_id: str) -> None:
    """In the trial, after epoch `epoch` was reported: die there if `fault` says so."""
    match = TRIAL_FAULT.fullmatch(fault) if fault else None
    if match is None or restored:
        return
    if match[1] and epoch == int(match[2]):
        _wait_until_logged(epoch)
        os.kill(os.getpid(), signal.SIGKILL)
    if match[3] and epoch == int(match[4]) and node_id == match[5]:
        os.kill(os.getppid(), signal.SIGKILL)  # a trial's worker is its node's raylet's child
        os.kill(os.getpid(), signal.SIGKILL)


def _wait_until_logged(epochs: int, patience_s: float = 120.0) -> None:
    """Until the driver has written this trial's first `epochs` results to its result.json (on the
    driver's machine: a local search's trials can read it), or `patience_s` has passed."""
    log = Path(tune.get_context().get_trial_dir()) / "result.json"
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        if log.is_file() and sum(1 for line in log.read_text().splitlines() if line.strip()) >= epochs:
            return
        time.sleep(0.05)
