"""Class balancing (`balance:` oversample or class_weight), seen through the engine's own epoch:
which images an epoch trains on, and what loss it weighs them with."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from digitsearch.core import engine
from digitsearch.core.config import TrainSettings

# 900 images of class 0, 90 of class 1, 10 of class 2: a 90:1 imbalance
COUNTS = (900, 90, 10)
LABELS = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(COUNTS)])


class LabelCounter(nn.Module):
    """A real (tiny) classifier that also counts the classes of the images it is fed: each test
    image is filled with its own label, so the pixel tells which class was drawn."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(4, classes)
        self.seen = torch.zeros(classes, dtype=torch.long)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += torch.bincount(x[:, 0, 0, 0].round().long(), minlength=len(self.seen))
        return self.linear(x.flatten(1))


def _labelled_images() -> engine.Tensors:
    return engine.Tensors(LABELS.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous(), LABELS)


def _classes_drawn(balance: str, seed: int = 0) -> list[int]:
    model = LabelCounter()
    settings = TrainSettings(batch_size=100, balance=balance)
    metrics = engine.train_epoch(model, engine.make_optimizer(model, settings), _labelled_images(), settings,
                                 torch.Generator().manual_seed(seed))
    assert metrics["images_per_second"] > 0
    return model.seen[: len(COUNTS)].tolist()


def test_without_balancing_an_epoch_sees_every_image_once():
    assert _classes_drawn("none") == list(COUNTS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oversampling_draws_every_class_equally_over_an_epoch_of_the_usual_length(seed):
    drawn = _classes_drawn("oversample", seed)
    assert sum(drawn) == len(LABELS)
    share = len(LABELS) / len(COUNTS)
    # a multinomial draw: about 15 images of spread per class; 60 is four of them
    assert all(abs(n - share) < 60 for n in drawn), drawn
    assert drawn[2] > 20 * COUNTS[2]  # the rare class's 10 images, each drawn again and again


def test_class_weights_are_the_inverse_class_frequency_with_a_mean_of_one_per_image():
    order, weight = engine.class_balance(LABELS, "class_weight", torch.Generator().manual_seed(0))
    assert order is None  # the epoch's order stays the plain shuffle
    expected = [len(LABELS) / (len(COUNTS) * n) for n in COUNTS]  # 0.37, 3.7, 33.3
    assert weight.tolist() == pytest.approx(expected)
    assert weight[LABELS].mean().item() == pytest.approx(1.0)


@pytest.fixture(autouse=True)
def fp32_training(monkeypatch):
    """These tests check the loss to 1e-5: the net's own output must not be rounded to bf16."""
    monkeypatch.setenv(engine.CPU_BF16_ENV, "0")


def _first_batch_loss(balance: str, log_probs: torch.Tensor) -> float:
    """The engine's train_loss for one batch of every image, on a net whose every image gets
    the class probabilities exp(log_probs): the loss it computed before its one step."""
    model = LabelCounter(classes=len(log_probs))
    with torch.no_grad():
        model.linear.weight.zero_()
        model.linear.bias.copy_(log_probs)
    settings = TrainSettings(batch_size=len(LABELS), balance=balance, optimizer="sgd", momentum=0.0)
    return engine.train_epoch(model, engine.make_optimizer(model, settings), _labelled_images(), settings,
                              torch.Generator().manual_seed(0))["train_loss"]


def test_class_weight_makes_the_loss_count_each_class_equally():
    """Cross-entropy weighted by inverse frequency is the plain mean over classes of each
    class's loss; unweighted, the common class's loss dominates."""
    log_probs = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    per_class = [-lp for lp in log_probs.tolist()]
    by_frequency = sum(n * loss for n, loss in zip(COUNTS, per_class)) / len(LABELS)
    assert _first_batch_loss("none", log_probs) == pytest.approx(by_frequency, rel=1e-5)
    assert _first_batch_loss("class_weight", log_probs) == pytest.approx(sum(per_class) / 3, rel=1e-5)
    assert sum(per_class) / 3 > 2 * by_frequency  # the rare classes' larger losses now count


def test_classes_absent_from_the_labels_are_never_drawn_and_weigh_nothing():
    """Ten outputs, labels of three classes only (the top seven absent from this split)."""
    model = LabelCounter(classes=10)
    settings = TrainSettings(batch_size=100, balance="oversample")
    engine.train_epoch(model, engine.make_optimizer(model, settings), _labelled_images(), settings,
                       torch.Generator().manual_seed(0))
    assert model.seen[len(COUNTS):].tolist() == [0] * 7
    probs = torch.tensor([0.5, 0.2, 0.1] + [0.2 / 7] * 7)
    present = [-math.log(p) for p in probs[: len(COUNTS)].tolist()]
    assert _first_batch_loss("class_weight", probs.log()) == pytest.approx(sum(present) / 3, rel=1e-5)
