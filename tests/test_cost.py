"""core.cost: a model's CPU latency, throughput and size, measured as a trial measures them."""
from __future__ import annotations

import io

import pytest
import torch

from digitsearch import models
from digitsearch.core import cost


def _starting_point_net():
    # the Keras "simple MNIST convnet" (the cnn space's starting point 2): ~0.2-0.5 ms per image here
    return models.create("cnn", num_classes=10, image_size=28, in_channels=1, depth=2, filters=[32, 64],
                         pool=["max", "max"], kernel=3, convs=1, padding="valid", batchnorm=False,
                         conv_dropout=0.0, head="flatten", dense_layers=0, dense=[], dropout=0.5)


def test_a_measurement_has_every_figure_and_leaves_the_model_as_it_was():
    torch.set_num_threads(1)
    model = _starting_point_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measured = cost.measure(model, torch.randn(1, 1, 28, 28))
    assert measured.latency_ms > 0 and measured.images_per_s > 0 and measured.threads == 1 and measured.cpu
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert measured.model_kb == round(buffer.tell() / 1024, 1)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(measured.metrics()) == {"latency_ms", "images_per_s", "model_kb", "cost_threads", "cost_cpu"}


@pytest.mark.timing
def test_two_measurements_of_one_model_agree_within_15_percent(band):
    """The reproducibility bar of a model's measured latency, on an idle 2-core machine. The
    median of each measurement's repeats; the better of two tries per side so that one
    preempted measurement does not decide it."""
    torch.set_num_threads(1)
    model, x = _starting_point_net(), torch.randn(1, 1, 28, 28)

    def latency() -> float:
        return min(cost.measure(model, x).latency_ms for _ in range(2))

    first, second = latency(), latency()
    band("two latency measurements of one model: their difference", 100 * abs(first - second) / min(first, second),
         15.0, "%")


def test_an_lstm_over_image_rows_is_measured_too():
    model = models.create("lstm", num_classes=10, image_size=28, in_channels=1)
    assert cost.measure(model, torch.randn(1, 1, 28, 28)).latency_ms > 0
