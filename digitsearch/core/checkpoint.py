"""A trial's training state on disk: model, optimizer, LR schedule, sampler and the epoch's
metrics, enough to continue from the best epoch after a retry, a lost node or `--resume`.

Only tensors, numbers, text, lists and dicts go in, and it is read back with
torch.load(weights_only=True): checkpoints may sit in a shared folder or bucket (--storage),
and a pickle planted there must not run code on the workers that load it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from digitsearch.core import schedules
from digitsearch.errors import UserError


def save(path: Path, model: nn.Module, optimizer, scheduler, generator: torch.Generator, metrics: dict) -> None:
    torch.save({"state_dict": model.state_dict(), "metrics": metrics, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": generator.get_state()}, path)


def load(path: Path) -> dict:
    """The saved state; anything but plain data (a pickled object, code) is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError and friends: torch names what it refused
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"checkpoint {path} holds more than tensors and plain data; refused ({first[:200]})") from None


def restore(state: dict, model: nn.Module, optimizer, scheduler, generator: torch.Generator,
            steps_per_epoch: int = 1) -> tuple[int, float, int]:
    """Load `state` into the training objects; (next epoch, best val_acc, best epoch)."""
    model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    try:
        generator.set_state(state["generator"])
    except (RuntimeError, ValueError):  # saved on another kind of device (a CPU trial resumed on a GPU)
        pass  # the random stream goes on from the run's seed: shuffles and augmentation differ, nothing else
    metrics = state["metrics"]
    # the schedule is a function of the step alone: put it at the saved epoch's end, which also
    # serves checkpoints written by the per-epoch StepLR of earlier versions
    schedules.seek(scheduler, metrics["epoch"] * steps_per_epoch)
    return metrics["epoch"] + 1, metrics["val_acc"], metrics["epoch"]
