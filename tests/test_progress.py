"""The live view of a search: one line per finished trial with counts, the best so far and time left.
(--quiet through the CLI: tests/test_board.py, whose search runs quiet.)"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from digitsearch.errors import UserError
from digitsearch.progress import SearchProgress
from digitsearch.search import SearchRequest


def _trial(trial_id, status="TERMINATED", **last):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=last,
                           config={"cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "lr": 0.001})


def test_each_finished_trial_is_one_line_with_counts_best_and_time_left():
    lines = []
    view = SearchProgress(total=4, max_epochs=5, echo=lines.append)
    done, stopped, skipped = _trial("aaa", epoch=5, val_acc=0.9, best_val_acc=0.95), \
        _trial("bbb", epoch=2, val_acc=0.4), _trial("ccc", note="over budget: 9,000,000 parameters")
    running = _trial("ddd", status="RUNNING")
    for trial in (done, stopped):
        view.on_trial_result(0, [], trial, trial.last_result)
    view.on_trial_complete(0, [done, stopped, skipped, running], done)
    view.on_trial_complete(0, [done, stopped, skipped, running], stopped)
    view.on_trial_complete(0, [done, stopped, skipped, running], skipped)
    view.on_trial_error(0, [done, stopped, skipped, running], running)
    assert len(lines) == 4
    assert lines[0].startswith("[1/4] aaa: val_acc 0.9500 after 5 epochs |")
    assert "done 1, stopped 0, errored 0, not trained 0, running 1" in lines[0]
    assert "best 0.9000 (aaa: depth=2 filters=32/64 lr=0.001)" in lines[0]
    assert "stopped early" in lines[1] and "done 1, stopped 1" in lines[1]
    assert lines[2].startswith("[3/4] ccc: over budget") and "not trained 1" in lines[2]
    assert "errored 1" in lines[3] and "~0m00s left" in lines[3]
    assert "error, retried once: see the leaderboard's note" in lines[3]  # no error.txt to quote here
    assert view.done == 4


def test_quiet_and_verbose_exclude_each_other():
    with pytest.raises(UserError, match="--quiet and --verbose"):
        SearchRequest(quiet=True, verbose=True).check()
