"""The faults the e2e tests inject (digitsearch/search/callbacks/faults.py) are read as asked
and a wrong one refused; without them a search and its trials gain nothing."""
from __future__ import annotations

import pytest

from digitsearch.errors import UserError
from digitsearch.search.callbacks import faults


def test_the_fault_a_test_asks_for_is_read_and_a_wrong_one_refused(monkeypatch):
    from digitsearch.search.callbacks.ledger import Ledger

    monkeypatch.delenv(faults.FAULT_VARIABLE, raising=False)
    assert faults.injected(Ledger(None, 3)) == []  # a search without it gains no callback
    monkeypatch.setenv(faults.FAULT_VARIABLE, "kill-after-trial-end:2")
    (kill,) = faults.injected(Ledger(None, 3))
    assert (kill.fault, kill.after) == ("kill-after-trial-end", 2)
    for wrong in ("kill-sometime", "kill-after-trial-end:0", "kill-after-replaced-checkpoint:2"):
        monkeypatch.setenv(faults.FAULT_VARIABLE, wrong)
        with pytest.raises(UserError, match="expected kill-after-trial-end"):
            faults.injected(Ledger(None, 3))


def test_the_trial_fault_is_read_and_a_wrong_one_refused(monkeypatch):
    monkeypatch.delenv(faults.TRIAL_FAULT_VARIABLE, raising=False)
    assert faults.trial_fault() == ""
    for right in ("die-after-epoch:4", "kill-node-after-epoch:2@0123abcd"):
        monkeypatch.setenv(faults.TRIAL_FAULT_VARIABLE, right)
        assert faults.trial_fault() == right
    for wrong in ("die", "die-after-epoch:x", "kill-node-after-epoch:2"):
        monkeypatch.setenv(faults.TRIAL_FAULT_VARIABLE, wrong)
        with pytest.raises(UserError, match="expected die-after-epoch:N or kill-node-after-epoch:N@NODE_ID"):
            faults.trial_fault()


def test_a_trial_fault_fires_only_at_its_epoch_on_its_node_and_not_after_a_restart(monkeypatch):
    killed, waited = [], []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    monkeypatch.setattr(faults, "_wait_until_logged", waited.append)
    monkeypatch.setattr(faults.os, "getppid", lambda: 11)
    monkeypatch.setattr(faults.os, "getpid", lambda: 12)
    for fault, epoch, restored, node in (("", 4, False, "a"), ("die-after-epoch:4", 3, False, "a"),
                                         ("die-after-epoch:4", 4, True, "a"),
                                         ("kill-node-after-epoch:2@b", 2, False, "a")):
        faults.after_epoch(fault, epoch, restored=restored, node_id=node)
    assert killed == [] and waited == []
    faults.after_epoch("die-after-epoch:4", 4, restored=False, node_id="a")
    assert waited == [4] and killed == [(12, faults.signal.SIGKILL)]
    killed.clear()
    faults.after_epoch("kill-node-after-epoch:2@b", 2, restored=False, node_id="b")
    assert killed == [(11, faults.signal.SIGKILL), (12, faults.signal.SIGKILL)]  # its raylet, then itself
