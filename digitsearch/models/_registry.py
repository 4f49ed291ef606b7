"""A registry of model families, after timm's: a family is a function of typed keyword
arguments, registered by name on import, and `create(name, **kwargs)` is the one way in.

Registration happens when `digitsearch.models` is imported, never inside the CLI process
only, so Ray workers (which import the package afresh) see every family.
"""
from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from digitsearch.errors import UserError

_FAMILIES: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}

# What a family's model maps from and to, and the shape kwargs the caller adds from the data:
#   image:    (N, C, H, W) float images -> (N, num_classes) logits;
#             kwargs num_classes, image_size (int for square images or [height, width])
#   sequence: (N, in_length, vocab_size) one-hot symbols -> (N, out_length, vocab_size) logits;
#             kwargs vocab_size, in_length, out_length; forward(x, targets=None) may use the
#             targets (N, out_length) for teacher forcing while training
TASKS = ("image", "sequence")


def register(name: str, task: str = "image"):
    """Decorator: register `fn(**kwargs) -> nn.Module` as the family `name`, serving `task`."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        _FAMILIES[name] = fn
        _TASKS[name] = task
        return fn

    return wrap


def task_of(name: str) -> str:
    """The task family `name` serves ("image" or "sequence")."""
    family(name)
    return _TASKS[name]


def image_hw(image_size) -> tuple[int, int]:
    """28 -> (28, 28); [28, 84] -> (28, 84): image families accept either form."""
    if isinstance(image_size, (list, tuple)):
        height, width = (int(v) for v in image_size)
        return height, width
    return int(image_size), int(image_size)


def list_models() -> list[str]:
    return sorted(_FAMILIES)


def describe(name: str) -> str:
    """First line of the family's docstring, for `digitsearch models`."""
    doc = inspect.getdoc(family(name)) or ""
    return doc.splitlines()[0] if doc else ""


def family(name: str) -> Callable[..., nn.Module]:
    if name not in _FAMILIES:
        known = ", ".join(list_models())
        raise UserError(f"unknown model family {name!r}; known families: {known}")
    return _FAMILIES[name]


def create(name: str, **kwargs) -> nn.Module:
    """Build family `name`; an unknown keyword is a UserError, not a silent default."""
    fn = family(name)
    accepted = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(
            f"model family {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted)}"
        )
    return fn(**kwargs)


def count_params(model: nn.Module) -> int:
    """Trainable parameters, the figure Keras' summary() prints."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class InvalidArchitecture(ValueError):
    """Kwargs that describe no working net (e.g. pooling a 1-pixel map).

    A search can propose such configs; the trainable reports them as infeasible
    instead of crashing the trial.
    """


def forward_mflops(model: nn.Module, example) -> float:
    """Millions of floating-point operations for one forward pass of `example` (torch's own counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    model.train(was_training)
    return counter.get_total_flops() / 1e6
