"""The retrain check (final/check.py, final/training.py): a retrained member below what its search
trial scored on the validation images, which it has now trained on, is trained once more under
another seed when no time limit binds, the better run kept; under a time limit it is said."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from digitsearch.final import check, training
from digitsearch.final.training import Trained


def test_short_means_more_than_one_validation_image_below():
    assert check.Check(seen=0.99, promised=1.0, images=100).short is False  # exactly one image: noise
    assert check.Check(seen=0.98, promised=1.0, images=100).short is True
    assert check.Check(seen=1.0, promised=0.99, images=100).short is False
    assert "scores 0.9800 on the 100 validation images it trained on, below the 1.0000" in \
        check.Check(0.98, 1.0, 100).line("abc")


def _member(val_acc=1.0):
    return SimpleNamespace(trial={"trial_id": "t1", "val_acc": val_acc}, reseed=0, epochs=3)


@pytest.fixture
def fake_training(monkeypatch):
    """train() and check() as a test tells them: each run's seed -> its accuracy on the val images."""
    seen_by_seed: dict[int, float] = {}
    runs: list[int] = []

    def train(member, bundle, data, seed, progress=None, on_start=None, time_hooks=None):
        runs.append(seed)
        return Trained(model=seed, history=[{}] * member.epochs)

    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(check, "check", lambda model, bundle, data, promised: check.Check(
        seen_by_seed[model], promised, 100))
    return seen_by_seed, runs


def _kept(member, time_limited, notes):
    first = Trained(model=0, history=[{}] * 3)
    job = SimpleNamespace(meta={"seed": 0})
    return training._kept_after_check(first, member, job, None, None, time_limited, notes.append, None, None)


def test_a_short_member_is_trained_again_and_the_better_run_kept(fake_training):
    seen_by_seed, runs = fake_training
    seen_by_seed.update({0: 0.97, check.RESEED: 0.995})
    notes = []
    kept = _kept(_member(), time_limited=False, notes=notes)
    assert runs == [check.RESEED] and kept.model == check.RESEED and kept.reseed == check.RESEED
    assert "training it once more under another seed" in notes[0] and "kept the second run" in notes[1]


def test_the_first_run_stays_when_the_second_is_no_better(fake_training):
    seen_by_seed, _ = fake_training
    seen_by_seed.update({0: 0.97, check.RESEED: 0.96})
    notes = []
    kept = _kept(_member(), time_limited=False, notes=notes)
    assert kept.model == 0 and kept.reseed == 0 and "kept the first run" in notes[1]


def test_under_a_time_limit_a_short_member_is_only_said(fake_training):
    seen_by_seed, runs = fake_training
    seen_by_seed[0] = 0.97
    notes = []
    kept = _kept(_member(), time_limited=True, notes=notes)
    assert runs == [] and kept.model == 0 and "--time-limit left no time" in notes[0]


def test_a_member_that_keeps_its_promise_is_left_alone(fake_training):
    seen_by_seed, runs = fake_training
    seen_by_seed[0] = 1.0
    notes = []
    assert _kept(_member(), time_limited=False, notes=notes).check.short is False
    assert runs == [] and notes == []


def test_a_member_trained_fewer_epochs_than_its_trial_peaked_at_is_not_trained_again(fake_training):
    seen_by_seed, runs = fake_training
    seen_by_seed.update({0: 0.90})
    member = SimpleNamespace(trial={"trial_id": "t1", "val_acc": 1.0, "best_epoch": 12}, reseed=0, epochs=3)
    notes = []
    kept = _kept(member, time_limited=False, notes=notes)  # `best --retrain --epochs 3` of a trial that peaked at 12
    assert runs == [] and kept.model == 0 and kept.check.short and notes == []
