"""A sampled config still at chance after its first epoch is stopped there (search/chance.py):
the bar, the trainable's epoch loop (tune.report caught in a list, no Ray), and the study's
PRUNED for the note."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from digitsearch.core import engine
from digitsearch.core.config import TrialConfig
from digitsearch.data.bundle import Bundle, Split
from digitsearch.search import chance, trainable
from digitsearch.search.reconcile import ResumableOptunaSearch, ending
from digitsearch.search.trainable import TrialRuntime

optuna.logging.set_verbosity(optuna.logging.WARNING)
CLASSES, SIDE = 10, 8


# --- the bar ---

def _balanced(n: int, classes: int = CLASSES) -> np.ndarray:
    return np.arange(n) % classes


@pytest.mark.parametrize(("labels", "expected"), [
    (_balanced(140), 0.1 + 2 * (0.1 * 0.9 / 140) ** 0.5),  # about the bundled digits' 144 images: 0.151
    (_balanced(800), 0.1 + 2 * (0.1 * 0.9 / 800) ** 0.5),  # MNIST-10k's: 0.121
    (_balanced(6_000), 0.12),  # Fashion-MNIST's: two standard errors are below the floor
    (_balanced(144, classes=2), 0.5 + 2 * (0.25 / 144) ** 0.5),  # two classes: 0.583, not 0.75
])
def test_the_bar_is_chance_plus_two_standard_errors_of_a_guess(labels, expected):
    assert chance.bar(labels) == pytest.approx(expected)


def test_chance_is_the_share_of_the_most_common_class():
    labels = np.array([0] * 60 + [1] * 20 + [2] * 20)  # a net that answers 0 scores 0.6
    assert chance.bar(labels) == pytest.approx(0.6 + 2 * (0.6 * 0.4 / 100) ** 0.5)


def test_both_accuracies_must_be_at_chance():
    assert chance.at_chance({"val_acc": 0.10, "train_acc": 0.11}, 0.15)
    assert chance.at_chance({"val_acc": 0.15, "train_acc": 0.15}, 0.15)  # "no better than chance": at the bar too
    # the recipe net on the digits after one epoch: val at chance (batchnorm's running statistics
    # and its warmup), but it classifies its training batches: it learns
    assert not chance.at_chance({"val_acc": 0.10, "train_acc": 0.36}, 0.15)
    assert not chance.at_chance({"val_acc": 0.30, "train_acc": 0.12}, 0.15)


def test_the_note():
    assert chance.note(0.0972) == "at chance: val_acc 0.0972 after 1 epoch"


# --- the trainable's epoch loop ---

class Constant(nn.Module):
    """Logits 0 for every class whatever its input: argmax answers class 0, a net stuck at chance."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(len(x), CLASSES) + 0 * self.weight


def _images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright pixel at position k: a linear net learns it within an epoch."""
    labels = _balanced(n)
    pixels = np.zeros((n, SIDE, SIDE), np.uint8)
    pixels[np.arange(n), labels // SIDE, labels % SIDE] = 255
    return pixels, labels


def _data(n: int):
    pixels, labels = _images(n)
    return engine.to_tensors(pixels, labels, 0.0, 1.0)


def _linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, CLASSES))


RUNTIME = TrialRuntime(family="cnn", max_epochs=4, threads=1, seed=0, max_params=10**6, max_mflops=100.0)
CFG = TrialConfig.from_flat({"lr": 0.05, "batch_size": 8}, "cnn")


@pytest.fixture
def reports(monkeypatch) -> list[dict]:
    """What the trial tells Tune, epoch by epoch (checkpoints left out)."""
    told: list[dict] = []
    monkeypatch.setattr(trainable.tune, "report", lambda metrics, checkpoint=None: told.append(dict(metrics)))
    return told


def _run(model: nn.Module, runtime: TrialRuntime = RUNTIME, chance_bar: float | None = 0.15,
         restored: tuple[int, float, int] = (1, -1.0, 0)) -> None:
    torch.manual_seed(0)
    train, val = _data(80), _data(40)
    optimizer = engine.make_optimizer(model, CFG.train)
    scheduler = engine.make_scheduler(optimizer, CFG.train, runtime.max_epochs, len(train))
    generator = torch.Generator().manual_seed(0)
    trainable._train_epochs(model, optimizer, scheduler, generator, train, val, CFG, runtime, {"node": "n"},
                            restored, chance_bar=chance_bar)


def test_a_net_at_chance_after_its_first_epoch_ends_there_with_the_note(reports):
    _run(Constant())
    assert [r["epoch"] for r in reports] == [1]
    assert reports[0]["note"] == "at chance: val_acc 0.1000 after 1 epoch"
    assert ending(reports[0], RUNTIME.max_epochs) == "pruned"  # it measured something: as ASHA's stop


def test_a_net_that_learns_runs_every_epoch(reports):
    _run(_linear())
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]
    assert reports[0]["val_acc"] > 0.15 and all(r["note"] == "" for r in reports)


def test_without_a_bar_a_net_at_chance_runs_every_epoch(reports):
    """A starting point, or a sequence task: _chance_bar gives None."""
    _run(Constant(), chance_bar=None)
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]


def test_a_trial_restored_past_its_first_epoch_is_not_judged(reports):
    _run(Constant(), restored=(3, 0.1, 1))
    assert [r["epoch"] for r in reports] == [3, 4] and all(r["note"] == "" for r in reports)


def test_a_trial_of_one_epoch_completes(reports):
    one = TrialRuntime(family="cnn", max_epochs=1, threads=1, seed=0, max_params=10**6, max_mflops=100.0)
    _run(Constant(), runtime=one)
    assert [(r["epoch"], r["note"]) for r in reports] == [(1, "")]


def test_at_chance_is_said_before_the_time_limit():
    late = TrialRuntime(family="cnn", max_epochs=4, threads=1, seed=0, max_params=10**6, max_mflops=100.0,
                        deadline=100.0)
    stuck = {"val_acc": 0.1, "train_acc": 0.1}
    assert trainable._stop_note(1, stuck, late, 0.15, epoch_seconds=10, now=95).startswith("at chance")
    assert trainable._stop_note(2, stuck, late, 0.15, epoch_seconds=10, now=95) == \
        "time limit: stopped after epoch 2 of 4"
    assert trainable._stop_note(1, {"val_acc": 0.9, "train_acc": 0.9}, late, 0.15, epoch_seconds=1, now=50) == ""


# --- who is judged ---

def _bundle(task: str = "image") -> Bundle:
    pixels, labels = _images(40)
    return Bundle("toy", Split(pixels, labels), Split(pixels, labels), None, [str(k) for k in range(CLASSES)],
                  task=task, vocab="0123456789" if task == "sequence" else None)


START = {"cnn.depth": 3, "lr": 0.003}


def test_a_sampled_image_config_is_judged_against_the_validation_labels():
    runtime = TrialRuntime(family="cnn", max_epochs=4, threads=1, seed=0, max_params=1, max_mflops=1.0,
                           starting_points=(START,))
    assert trainable._chance_bar({"cnn.depth": 2, "lr": 0.003}, _bundle(), runtime) == \
        pytest.approx(chance.bar(_balanced(40)))


def test_a_starting_point_a_sequence_task_and_a_fifo_search_are_not_judged():
    runtime = TrialRuntime(family="cnn", max_epochs=4, threads=1, seed=0, max_params=1, max_mflops=1.0,
                           starting_points=(START,))
    assert trainable._chance_bar({**START, "dropout": 0.3}, _bundle(), runtime) is None  # the sampler filled the rest
    assert trainable._chance_bar({"cnn.depth": 2}, _bundle("sequence"), runtime) is None
    fifo = TrialRuntime(family="cnn", max_epochs=4, threads=1, seed=0, max_params=1, max_mflops=1.0,
                        stop_at_chance=False)
    assert trainable._chance_bar({"cnn.depth": 2}, _bundle(), fifo) is None


# --- the study ---

def test_the_study_is_told_pruned_with_the_epoch_it_measured():
    searcher = ResumableOptunaSearch(space=lambda trial: {"x": trial.suggest_float("x", 0, 1)}, metric="best_val_acc",
                                     mode="max", sampler=optuna.samplers.RandomSampler(seed=0), max_epochs=4)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"val_acc": 0.1, "best_val_acc": 0.1, "epoch": 1, "training_iteration": 1,
                                     "note": chance.note(0.1)})
    trial = searcher._ot_study.trials[0]
    assert (trial.state, trial.intermediate_values, trial.constraints) == \
        (optuna.trial.TrialState.PRUNED, {1: 0.1}, {})
