"""A registry of model families, after timm's: a family is a function of typed keyword
arguments, registered by name on import, and `create(name, **kwargs)` is the one way in.

Registration happens when `digitsearch.models` is imported, never inside the CLI process
only, so Ray workers (which import the package afresh) see every family.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import pydantic
from torch import nn

from digitsearch.errors import UserError, validation_message

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


def takes(name: str, kwarg: str) -> bool:
    """Whether family `name` accepts keyword `kwarg` (e.g. transfer takes input_mean)."""
    return kwarg in inspect.signature(family(name)).parameters


def check_serves(name: str, task: str, dataset: str) -> None:
    """A family paired with data of another task (seq2seq on images) is a UserError."""
    serves = task_of(name)
    if serves != task:
        hint = ("use --dataset addition, or an image family for image data" if serves == "sequence"
                else "use --space seq2seq for a sequence task, or an image dataset")
        raise UserError(f"model family {name!r} serves {serves} data but dataset {dataset!r} holds {task} data; {hint}")


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
    check_kwargs(name, kwargs)
    return family(name)(**kwargs)


def check_kwargs(name: str, kwargs: dict) -> None:
    """Every keyword a family is given must be one it takes, of the type its signature says.

    The families' typed signatures are the schema (pydantic reads them), so a typo or a value
    of the wrong type is one line before a model is built, not a TypeError deep in a layer."""
    accepted = inspect.signature(family(name)).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise BadKwarg(f"model family {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(accepted)}",
                       (unknown[0],))
    try:
        _kwargs_schema(name).model_validate(kwargs)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else str(part) for part in first["loc"])
        raise BadKwarg(f"model family {name!r}: {where} {validation_message(first)}", first["loc"]) from None


class BadKwarg(UserError):
    """A kwarg the family does not take, or of the wrong type; `loc` is the path to it,
    e.g. ("kernal",) or pydantic's ("filters", 1)."""

    def __init__(self, message: str, loc: tuple):
        super().__init__(message)
        self.loc = loc


@functools.cache
def _kwargs_schema(name: str) -> type[pydantic.BaseModel]:
    """A pydantic model of family `name`'s keyword arguments, from its annotations."""
    fields: dict[str, Any] = {}
    for p in inspect.signature(family(name), eval_str=True).parameters.values():
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        fields[p.name] = (annotation, ... if p.default is inspect.Parameter.empty else p.default)
    config = pydantic.ConfigDict(arbitrary_types_allowed=True, extra="forbid")
    return pydantic.create_model(f"{name}_kwargs", __config__=config, **fields)


def count_params(model: nn.Module) -> int:
    """Trainable parameters, the figure Keras' summary() prints."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class InvalidArchitecture(ValueError):
    """Kwargs that describe no working net (e.g. pooling a 1-pixel map).

    A search can propose such configs; the trainable reports them as infeasible
    instead of crashing the trial.
    """


def forward_mflops(model: nn.Module, example) -> float:
    """Millions of floating-point operations for one forward pass of `example`: 2 per
    multiply-add of every convolution, linear layer and LSTM, counted from their shapes by
    forward hooks. The same figure torch's FlopCounterMode gives for these layers (a test
    checks every family), without its cost on the trial path: it imports torch._dynamo
    (about 1 s and 150 MB in a fresh worker) and traces every op."""
    import torch

    was_training = model.training
    model.eval()
    total = [0]
    hooks = [m.register_forward_hook(counter(total)) for m in model.modules()
             for kind, counter in _COUNTERS.items() if isinstance(m, kind)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total[0] / 1e6


def _count_conv(total: list[int]):
    """2 * each output element * the kernel's inputs per output channel (bias not counted, as torch's counter)."""

    def hook(module: nn.Conv2d, inputs, output) -> None:
        total[0] += 2 * output.numel() * module.weight[0].numel()

    return hook


def _count_linear(total: list[int]):
    def hook(module: nn.Linear, inputs, output) -> None:
        total[0] += 2 * output.numel() * module.in_features

    return hook


def _count_lstm(total: list[int]):
    """2 * 4 gates * (input + hidden) * hidden per step, layer and direction (torch's counter
    sees none: on CPU nn.LSTM is one fused kernel)."""

    def hook(module: nn.LSTM, inputs, output) -> None:
        x = inputs[0]
        steps = x.shape[1] if module.batch_first else x.shape[0]
        batch = x.shape[0] if module.batch_first else x.shape[1]
        directions = 2 if module.bidirectional else 1
        width = module.hidden_size
        for layer in range(module.num_layers):
            fan_in = module.input_size if layer == 0 else width * directions
            total[0] += 2 * 4 * (fan_in + width) * width * steps * batch * directions

    return hook


# the layers whose multiply-adds count (what torch's FlopCounterMode counts: convolutions and
# matrix products; normalisation, activations and pooling are left out, as it does)
_COUNTERS = {nn.Conv2d: _count_conv, nn.Conv1d: _count_conv, nn.Linear: _count_linear, nn.LSTM: _count_lstm}
