"""The live view of a search: one line per finished trial with counts, the best so far and time left.
(--quiet through the CLI: tests/test_board.py, whose search runs quiet.)"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from digitsearch.errors import UserError
from digitsearch.search.callbacks.ledger import Ledger
from digitsearch.search.callbacks.progress import SearchProgress
from digitsearch.search.request import SearchRequest


def _trial(trial_id, status="TERMINATED", **last):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=last,
                           config={"cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "lr": 0.001})


def test_each_finished_trial_is_one_line_with_counts_best_and_time_left():
    lines = []
    ledger = Ledger(None, max_epochs=5)
    view = SearchProgress(total=4, ledger=ledger, echo=lines.append)
    done, stopped, skipped = _trial("aaa", epoch=5, val_acc=0.9, best_val_acc=0.95), \
        _trial("bbb", epoch=2, val_acc=0.4), _trial("ccc", note="over budget: 9,000,000 parameters")
    running = _trial("ddd", status="RUNNING")
    for trial in (done, stopped):
        view.on_trial_result(0, [], trial, trial.last_result)
    trials = [done, stopped, skipped, running]
    for callback in (ledger, view):  # in the order Tune calls them: the ledger first
        callback.on_trial_complete(0, trials, done)
    for callback in (ledger, view):
        callback.on_trial_complete(0, trials, stopped)
    for callback in (ledger, view):
        callback.on_trial_complete(0, trials, skipped)
    for callback in (ledger, view):
        callback.on_trial_error(0, trials, running)
    assert len(lines) == 4
    assert lines[0].startswith("[1/4] aaa: val_acc 0.9500 after 5 epochs |")
    assert "done 1, stopped 0, errored 0, not trained 0, running 1" in lines[0]
    assert "best 0.9000 (aaa: depth=2 filters=32/64 lr=0.001)" in lines[0]
    assert "stopped early" in lines[1] and "done 1, stopped 1" in lines[1]
    assert lines[2].startswith("[3/4] ccc: over budget") and "not trained 1" in lines[2]
    assert "errored 1" in lines[3] and "~0m00s left" in lines[3]
    assert "error, retried once: see the leaderboard's note" in lines[3]  # no error.txt to quote here
    assert ledger.done == 4 and ledger.outcomes == {"aaa": "done", "bbb": "stopped", "ccc": "not trained",
                                                    "ddd": "errored"}


def test_the_ledger_is_written_as_trials_end_and_read_back_by_a_resumed_driver(tmp_path):
    """finished.txt: what `tune --resume` counts on after a killed driver; a trial is recorded once."""
    path = tmp_path / "finished.txt"
    first = Ledger(path, max_epochs=3)
    first.on_trial_complete(0, [], _trial("aaa", epoch=3, val_acc=0.9))
    first.on_trial_complete(0, [], _trial("aaa", epoch=3, val_acc=0.9))  # Tune may report an end twice
    first.on_trial_error(0, [], _trial("bbb"))
    assert path.read_text() == "aaa\tdone\nbbb\terrored\n"
    resumed = Ledger(path, max_epochs=3)  # a new driver reads what the killed one wrote
    assert resumed.outcomes == {"aaa": "done", "bbb": "errored"} and resumed.resumed_with == 2
    resumed.on_trial_complete(0, [], _trial("ccc", epoch=1, val_acc=0.5))
    assert resumed.counts() == {"done": 1, "errored": 1, "stopped": 1} and resumed.done == 3


def test_quiet_and_verbose_exclude_each_other():
    with pytest.raises(UserError, match="--quiet and --verbose"):
        SearchRequest(quiet=True, verbose=True).check()
