"""The live view a search draws on a terminal (search.callbacks.live), fed fake trials and drawn
into a console of 80 columns; and where the view is used instead of plain lines. The plain
lines themselves: tests/test_progress.py."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
import typer
from clocks import FakeClock
from rich.console import Console

from digitsearch.core.timebudget import Deadline
from digitsearch.search.callbacks import live
from digitsearch.search.callbacks.ledger import Ledger
from digitsearch.search.callbacks.live import BestTrial, RunningTrial, Snapshot, render, terminal_console
from digitsearch.search.callbacks.progress import SearchProgress

WIDE = {"cnn.depth": 3, "cnn.filters_1": 32, "cnn.filters_2": 64, "cnn.filters_3": 128, "cnn.dense": 128,
        "cnn.dropout": 0.25, "lr": 0.00312, "weight_decay": 0.0005, "optimizer": "adamw", "batch_size": 128}
SMALL = {"cnn.depth": 2, "cnn.filters_1": 16, "cnn.filters_2": 32, "lr": 0.0005}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _console() -> Console:
    return Console(file=io.StringIO(), width=80, force_terminal=True)


def _frame(snapshot: Snapshot) -> list[str]:
    """The view as the terminal shows it: its lines, without the colour codes."""
    console = _console()
    console.print(render(snapshot, console.width))
    return [line.rstrip() for line in ANSI.sub("", console.file.getvalue()).splitlines()]


def _snapshot(**changes) -> Snapshot:
    base = dict(elapsed=250.0, left=350.0, limit=600.0, finished=11, total=None,
                counts={"done": 7, "stopped": 3, "not trained": 1},
                running=(RunningTrial("d41e0a2c", WIDE, 3, 0.98751), RunningTrial("8b0c7731", SMALL)),
                best=BestTrial(0.995, "3f47a4ea", WIDE), max_epochs=10, intent="search")
    return Snapshot(**{**base, **changes})


def _trial(trial_id, config=SMALL, **last):
    return SimpleNamespace(trial_id=trial_id, status="RUNNING", last_result=last, config=config,
                           local_path=None, path=None)


def test_a_time_limited_search_fits_80_columns_with_its_time_bar_running_trials_best_and_intent():
    lines = _frame(_snapshot(intent="final training: member 2/3"))
    print("\n".join(lines))  # the frame, for a reader of the test's output
    assert len(lines) == 6 and all(len(line) <= 80 for line in lines)
    time_bar, first, second, counts, best, planner = lines
    assert time_bar.startswith("time ") and time_bar.endswith("4m10s of 10m, 5m50s left")
    assert first.startswith("running  d41e0a2c depth=3 filters=32/64/128") and "…" in first  # the config gives way
    assert first.endswith("epoch 3/10 val 0.9875")
    assert second.split() == ["8b0c7731", "depth=2", "filters=16/32", "lr=0.0005", "starting", "val", "-"]
    assert counts == "finished 11: 7 completed, 3 stopped early, 1 not trained, 0 errored"
    assert best.startswith("best     0.9950 3f47a4ea depth=3 filters=32/64/128")
    assert planner == "planner: final training: member 2/3"


def test_trials_that_will_end_before_the_time_limit_show_the_paces_estimate_of_the_time_left():
    lines = _frame(_snapshot(elapsed=4.0, limit=160.0, left=13.0, finished=1, total=4))
    assert lines[0].endswith("4s of 2m40s, ~13s left")  # 4 trials at this pace, well within the limit


def test_without_a_time_limit_the_bar_counts_trials_and_many_running_trials_stay_a_few_lines():
    crowd = tuple(RunningTrial(f"{n:08x}", SMALL, 1, 0.5) for n in range(12))
    lines = _frame(_snapshot(limit=None, left=None, finished=3, total=12, running=crowd, best=None))
    assert lines[0].startswith("trials ") and lines[0].endswith("3/12 after 4m10s")
    assert len(lines) == 1 + live.MAX_RUNNING_ROWS + 1 + 3  # bar, 8 trials, "and 4 more", counts, best, planner
    assert lines[1 + live.MAX_RUNNING_ROWS].strip() == "and 4 more"
    assert lines[-2] == "best     -" and lines[-1] == "planner: search"


def test_a_long_intent_or_narrow_terminal_is_cut_never_wrapped():
    console = Console(file=io.StringIO(), width=60, force_terminal=True)
    console.print(render(_snapshot(intent="final training " * 10), console.width))
    lines = ANSI.sub("", console.file.getvalue()).splitlines()
    assert len(lines) == 6 and all(len(line) <= 60 for line in lines)
    assert lines[-1].startswith("planner: final training final") and lines[-1].endswith("…")


def test_the_search_progress_draws_the_view_and_prints_finished_trials_above_it():
    console, clock, ledger = _console(), FakeClock(), Ledger(None, max_epochs=3)
    intents = iter(["search", "search", "final training"])
    view = SearchProgress(total=None, ledger=ledger, echo=pytest.fail, deadline=Deadline.after(600.0, clock),
                          intent=lambda: next(intents, "final training"), console=console, clock=clock)
    view.setup()
    try:
        fast, slow = _trial("6aebcd4e", epoch=3, val_acc=0.9912, best_val_acc=0.9912), _trial("0c1d2e3f", WIDE)
        for trial in (fast, slow):
            view.on_trial_start(0, [], trial)
        view.on_trial_result(0, [], fast, fast.last_result)
        clock.advance(250.0)
        view.on_step_end(0, [])
        drawn = view.snapshot()
        assert [t.trial_id for t in drawn.running] == ["6aebcd4e", "0c1d2e3f"] and drawn.best.trial_id == "6aebcd4e"
        for callback in (ledger, view):
            callback.on_trial_complete(0, [fast, slow], fast)
    finally:
        view.on_experiment_end([])
    shown = ANSI.sub("", console.file.getvalue())
    assert "[1] 6aebcd4e: val 0.9912 after 3 of 3 epochs, completed, best so far\n" in shown  # the record stays
    assert "4m10s of 10m, 5m50s left" in shown and "running  0c1d2e3f" in shown
    assert "planner: final training" in shown  # the provider is read each time the view is drawn
    assert not view.view.live.is_started  # the round's end gives the terminal back


def test_the_view_is_drawn_about_twice_a_second_not_at_every_step_of_tune():
    drawn = []
    view = SearchProgress(total=4, ledger=Ledger(None, max_epochs=3), console=_console(), clock=FakeClock())
    view.view.show = drawn.append  # count the frames instead of drawing them
    view.on_step_end(0, [])
    view.on_step_end(0, [])
    view.clock.advance(0.4)
    view.on_step_end(0, [])
    view.clock.advance(0.1)
    view.on_step_end(0, [])
    assert len(drawn) == 2


def test_a_planner_provider_that_raises_is_shown_and_does_not_end_the_search():
    def broken():
        raise KeyError("member")

    view = SearchProgress(total=4, ledger=Ledger(None, max_epochs=3), intent=broken, clock=FakeClock())
    assert view.snapshot().intent == "? (its provider raised KeyError: 'member')"
    assert SearchProgress(total=4, ledger=Ledger(None, max_epochs=3)).snapshot().intent == "search"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("term, echo, live_view", [
    ("xterm-256color", typer.echo, True),  # the CLI's
    ("xterm-256color", print, True),  # the Python API's by default
    ("dumb", print, False),  # TERM=dumb: plain lines
    ("xterm-256color", lambda line: None, False),  # --quiet, or the Python API's own echo=
])
def test_the_live_view_is_for_an_interactive_terminal_that_the_lines_would_go_to(monkeypatch, term, echo, live_view):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", term)
    monkeypatch.setattr("sys.stdout", _Terminal())
    assert (terminal_console(echo) is not None) == live_view


def test_output_to_a_file_or_pipe_gets_plain_lines_even_with_force_color(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # colour in a CI log, where a redrawn view would be garbage
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert terminal_console(print) is None


def test_the_retrain_bar_says_final_training_member_k_of_k_in_80_columns():
    from digitsearch.cli.best import _Bars

    console = _console()
    with _Bars(console) as bars:
        bars.on_member(1, 2, "6aebcd4e")
        bars.start(23)
        bars.on_epoch(3, {"train_loss": 0.41234, "train_acc": 0.8911, "images_per_second": 812.3})
        bars.on_member(2, 2, "3f47a4ea")
    lines = [line for line in ANSI.sub("", console.file.getvalue()).splitlines() if line.strip()]
    assert lines[-2].startswith("final training: member 1/2 ") and "3/23 loss 0.4123 acc 0.8911" in lines[-2]
    assert lines[-1].startswith("final training: member 2/2 ") and "trial 3f47a4ea" in lines[-1]
    assert all(len(line) <= 80 for line in lines)


def test_tune_can_pickle_the_progress_with_its_view_and_planner_left_out():
    """Tune pickles its callbacks with the experiment's state; a console holds locks that cannot be."""
    import pickle

    view = SearchProgress(total=4, ledger=Ledger(None, max_epochs=3), intent=lambda: "final training",
                          console=_console(), clock=FakeClock())
    view.setup()
    try:
        copy = pickle.loads(pickle.dumps(view))
    finally:
        view.on_experiment_end([])
    assert copy.view is None and copy.snapshot().intent == "search" and copy.total == 4
    assert view.view is not None and view.snapshot().intent == "final training"  # the driver's own, as it was
