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
    registers it, deleting the old one, right after on_checkpoint).
The round's folder then holds the snapshot from before that moment. Unset, nothing is added
to a search.
"""
from __future__ import annotations

import os
import signal

from ray import tune

from digitsearch.errors import UserError

FAULT_VARIABLE = "DIGITSEARCH_FAULT"
FAULTS = ("kill-after-trial-end", "kill-after-replaced-checkpoint")


def injected(ledger) -> list[tune.Callback]:
    """The callback the environment asks for (after `ledger` in the callback list), or none."""
    value = os.environ.get(FAULT_VARIABLE, "")
    if not value:
        return []
    fault, _, count = value.partition(":")
    if fault not in FAULTS or (count and (fault != FAULTS[0] or not count.isdigit() or int(count) < 1)):
        raise UserError(f"{FAULT_VARIABLE}={value!r}: expected {FAULTS[0]}[:N] or {FAULTS[1]}")
    return [KillDriver(fault, ledger, int(count or 1))]


class KillDriver(tune.Callback):
    def __init__(self, fault: str, ledger, ends: int = 1):
        self.fault, self.ledger = fault, ledger
        self.after = ledger.done + ends  # trials earlier drivers recorded, and the new ends to wait for
        self.checkpointed: set[str] = set()
        self.armed = False

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.fault == "kill-after-trial-end" and self.ledger.done >= self.after:
            self.armed = True

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if self.fault == "kill-after-replaced-checkpoint" and trial.trial_id in self.checkpointed:
            self.armed = True
        self.checkpointed.add(trial.trial_id)

    def get_state(self):
        if self.armed:
            os.kill(os.getpid(), signal.SIGKILL)
        return None
