"""Trial checkpoints (core.checkpoint): a restart continues exactly where the best epoch was, and a
checkpoint that would run code when unpickled is refused, not run."""
from __future__ import annotations

import pytest
import torch

from digitsearch import models
from digitsearch.core import checkpoint, engine
from digitsearch.core.config import TrainSettings
from digitsearch.errors import UserError

SETTINGS = TrainSettings(optimizer="adam", lr=1e-3, lr_decay=0.5, decay_every=1)
EXAMPLES = 256  # two batches of SETTINGS' 128


def _training(seed: int):
    torch.manual_seed(seed)
    model = models.create("cnn", depth=1, filters=[4], dense_layers=0)
    optimizer = engine.make_optimizer(model, SETTINGS)
    scheduler = engine.make_scheduler(optimizer, SETTINGS, epochs=4, examples=EXAMPLES)
    return model, optimizer, scheduler, torch.Generator().manual_seed(seed)


def test_a_restart_continues_from_the_saved_epoch(tmp_path, digits_bundle):
    model, optimizer, scheduler, generator = _training(0)
    data = engine.to_tensors(digits_bundle.train.images[:EXAMPLES], digits_bundle.train.labels[:EXAMPLES], 0.1, 0.3)
    for _ in range(2):
        engine.train_epoch(model, optimizer, data, SETTINGS, generator, scheduler)
    path = tmp_path / "model.pt"
    checkpoint.save(path, model, optimizer, scheduler, generator, {"epoch": 2, "val_acc": 0.5, "note": ""})
    fresh = _training(1)
    assert checkpoint.restore(checkpoint.load(path), *fresh, steps_per_epoch=2) == (3, 0.5, 2)
    restored_model, restored_optimizer, restored_scheduler, restored_generator = fresh
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, restored_model.state_dict()[name])
    assert restored_scheduler.get_last_lr() == scheduler.get_last_lr() == [2.5e-4]
    assert restored_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(restored_generator.get_state(), generator.get_state())
    # the next epoch runs the same batches on the same weights either way
    after = engine.train_epoch(model, optimizer, data, SETTINGS, generator, scheduler)["train_loss"]
    again = engine.train_epoch(restored_model, restored_optimizer, data, SETTINGS, restored_generator,
                               restored_scheduler)["train_loss"]
    assert again == pytest.approx(after)
    assert restored_scheduler.get_last_lr() == scheduler.get_last_lr() == [1.25e-4]


class _RunsCode:
    """Unpickling this calls open(marker, "w"): what a planted checkpoint could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "model.pt"
    torch.save({"state_dict": {}, "metrics": {"epoch": 1}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(UserError, match="refused"):
        checkpoint.load(path)
    assert not marker.exists()
    # the plant is real: the unsafe load this replaced (weights_only=False) runs it
    torch.load(path, weights_only=False)["payload"].close()
    assert marker.exists()
