"""What a search prints where its output is not a terminal (a file, a pipe, CI, a notebook): a
short line per finished trial, and a status line after each minute of search. The live view a
terminal gets instead: tests/test_progress_live.py. (--quiet through the CLI: tests/test_board.py,
whose search runs quiet.)"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from clocks import FakeClock

from digitsearch.core.timebudget import Deadline
from digitsearch.errors import UserError
from digitsearch.search.callbacks.ledger import Ledger
from digitsearch.search.callbacks.progress import SearchProgress, last_error_line
from digitsearch.search.request import SearchRequest

CONFIG = {"cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "lr": 0.001}


def _trial(trial_id, status="TERMINATED", local_path=None, **last):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=last, config=CONFIG,
                           local_path=local_path, path=local_path)


def _end(ledger, view, trials, trial, error=False):
    for callback in (ledger, view):  # in the order Tune calls them: the ledger first
        (callback.on_trial_error if error else callback.on_trial_complete)(0, trials, trial)


def _started(view, *trials):
    for trial in trials:
        view.on_trial_start(0, [], trial)


def test_each_finished_trial_is_one_short_line_saying_how_it_ended():
    lines = []
    ledger = Ledger(None, max_epochs=5)
    view = SearchProgress(total=4, ledger=ledger, echo=lines.append)
    done, stopped, skipped = _trial("aaa", epoch=5, val_acc=0.9, best_val_acc=0.95), \
        _trial("bbb", epoch=2, val_acc=0.4), _trial("ccc", note="over budget: 9,000,000 parameters > 2,000,000")
    running = _trial("ddd", status="RUNNING")
    _started(view, done, stopped, skipped, running)
    for trial in (done, stopped):
        view.on_trial_result(0, [], trial, trial.last_result)
    trials = [done, stopped, skipped, running]
    for trial in (done, stopped, skipped):
        _end(ledger, view, trials, trial)
    _end(ledger, view, trials, running, error=True)
    assert lines == [
        "[1/4] aaa: val 0.9500 after 5 of 5 epochs, completed, best so far",
        "[2/4] bbb: val 0.4000 after 2 of 5 epochs, stopped early",
        "[3/4] ccc: over budget: 9,000,000 parameters > 2,000,000",
        "[4/4] ddd: error, retried once: see the leaderboard's note",  # no error.txt to quote here
    ]
    assert ledger.done == 4 and ledger.outcomes == {"aaa": "done", "bbb": "stopped", "ccc": "not trained",
                                                    "ddd": "errored"}
    # the counts any view shows are the ledger's
    assert view.snapshot().counts == {"done": 1, "stopped": 1, "not trained": 1, "errored": 1}
    assert view.snapshot().running == ()


def test_a_trial_the_time_limit_stopped_says_so_with_its_accuracy():
    lines = []
    ledger = Ledger(None, max_epochs=10)
    view = SearchProgress(total=None, ledger=ledger, echo=lines.append)
    cut = _trial("eee", epoch=4, val_acc=0.97, best_val_acc=0.98, note="time limit: stopped after epoch 4 of 10")
    _end(ledger, view, [cut], cut)
    assert lines == ["[1] eee: val 0.9800 after 4 of 10 epochs, time limit"]
    assert ledger.outcomes == {"eee": "stopped"}


def test_a_long_line_is_cut_to_80_characters_and_an_errors_traceback_gets_a_line_of_its_own(tmp_path, monkeypatch):
    lines = []
    ledger = Ledger(None, max_epochs=3)
    view = SearchProgress(total=300, ledger=ledger, echo=lines.append)
    folder = tmp_path / "trial_fff"
    folder.mkdir()
    message = ("RuntimeError: Given groups=1, weight of size [8, 3, 3, 3], expected input[256, 1, 28, 28] "
               "to have 3 channels, but got 1 channels instead")
    (folder / "error.txt").write_text(f"Failure # 2\nTraceback (most recent call last):\n  ...\n{message}\n")
    broken = _trial("fff", local_path=str(folder))
    _end(ledger, view, [broken], broken, error=True)
    first, second = lines
    assert first.startswith("[1/300] fff: error, retried once: RuntimeError: Given groups=1")
    assert len(first) == 80 and first.endswith("…")
    assert second == f"    traceback: {folder}/error.txt"  # a path is not cut: it says where to look
    assert last_error_line(broken) == f"{message} (traceback: {folder}/error.txt)"
    monkeypatch.chdir(tmp_path)  # a search run from the folder above its results
    again = SearchProgress(total=300, ledger=ledger, echo=lines.append)
    again.on_trial_error(0, [broken], broken)
    assert lines[-1] == "    traceback: trial_fff/error.txt"  # where the user is, shorter


def test_a_status_line_comes_after_each_minute_of_search_and_fits_100_characters():
    lines, clock = [], FakeClock()
    ledger = Ledger(None, max_epochs=5)
    deadline = Deadline.after(600.0, clock)
    view = SearchProgress(total=None, ledger=ledger, echo=lines.append, deadline=deadline, clock=clock,
                          intent=lambda: "search, then final training of the best 3")
    first, second = _trial("a1b2c3d4", epoch=2, val_acc=0.9912), _trial("e5f6a7b8", status="RUNNING")
    _started(view, first, second)
    view.on_trial_result(0, [], first, first.last_result)
    clock.advance(59.0)
    view.on_step_end(0, [])
    assert lines == []  # not before a minute of search
    clock.advance(1.0)
    view.on_step_end(0, [])
    view.on_step_end(0, [])  # at most one a minute
    (status,) = lines
    assert status.startswith("search: 0 done, 2 running, best 0.9912 (a1b2c3d4), 9m left, planner: search, then")
    assert len(status) == 100 and status.endswith("…")  # a planner's long intent is cut, not wrapped
    _end(ledger, view, [first, second], first)
    clock.advance(70.0)
    view.on_step_end(0, [])
    assert lines[-1].startswith("search: 1 done, 1 running, best 0.9912 (a1b2c3d4), 7m50s left")
    assert all(len(line) <= 100 for line in lines)


def test_without_a_time_limit_the_time_left_is_the_pace_so_far():
    lines, clock = [], FakeClock()
    ledger = Ledger(None, max_epochs=1)
    view = SearchProgress(total=4, ledger=ledger, echo=lines.append, clock=clock)
    clock.advance(60.0)
    view.on_step_end(0, [])
    assert lines == ["search: 0/4 done, 0 running, best -, 1m elapsed, planner: search"]  # no pace yet
    done = _trial("aaa", epoch=1, val_acc=0.5)
    _end(ledger, view, [done], done)
    clock.advance(60.0)
    view.on_step_end(0, [])
    assert lines[-1] == "search: 1/4 done, 0 running, best -, 6m left, planner: search"  # 2 min a trial, 3 to go


def test_a_trial_an_earlier_driver_counted_is_said_once_and_not_counted_again(tmp_path):
    path = tmp_path / "finished.txt"
    path.write_text("aaa\tdone\n")
    lines = []
    ledger = Ledger(path, max_epochs=3)  # a resumed driver: aaa had ended before the kill
    view = SearchProgress(total=2, ledger=ledger, echo=lines.append)
    again = _trial("aaa", epoch=3, val_acc=0.9)
    _end(ledger, view, [again], again)
    assert lines == ["resume: aaa had ended just before the driver stopped; its last epochs ran again to bring "
                     "its files up to date (counted once)"]
    assert ledger.done == 1


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
        SearchRequest(quiet=True, verbose=True).checked()


def test_retrain_lines_in_a_log_are_each_members_first_and_last_epoch_and_one_every_30_s(capsys):
    from digitsearch.cli.best import _EpochLines

    metrics = {"train_loss": 0.5, "train_acc": 0.9, "images_per_second": 1000.0}
    readings = iter([1.0, 10.0, 31.0, 45.0, 55.0, 70.0])  # epochs 1..6 end at these seconds
    with _EpochLines() as lines:
        lines.clock, lines.began = lambda: next(readings), 0.0
        lines.on_member(1, 1, "abc")
        lines.start(6)
        for epoch in range(1, 7):
            lines.on_epoch(epoch, metrics)
    said = [line.split(":")[1].strip() for line in capsys.readouterr().out.splitlines()]
    assert said == ["epoch 1/6", "epoch 3/6", "epoch 6/6"]  # 1 (the first), 3 (30 s on), 6 (the last)
