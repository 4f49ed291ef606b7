"""Parse the flat Tune config once, at the boundary (after nanoGPT's GPTConfig; pydantic at
the edge, as ARCHITECTURE.md asks).

A trial's config is a flat dict like {"cnn.depth": 2, "cnn.filters_1": 32, "lr": 1e-3}.
Keys prefixed by the family become model kwargs, with `name_1, name_2, ...` gathered
into a list `name`; unprefixed keys are training settings. An unknown key is an error,
not a silent default, and a model never sees the Tune dict.

TrainSettings is the one schema of the training settings: its types and bounds are what
preflight checks every space against before a search starts, what a trial and the retrain
parse their configs with, and what docs/spaces.md lists.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from digitsearch.errors import UserError, validation_message

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
# shift: random translations of up to 2 pixels (a padded random crop); light/strong: random affine warps
AUGMENTS = ("none", "shift", "light", "strong")
SCHEDULES = ("step", "cosine", "onecycle")
BALANCES = ("none", "oversample", "class_weight")
_INDEXED = re.compile(r"^(?P<name>.+)_(?P<index>\d+)$")


def _not_bool(value):
    # pydantic reads true as 1.0; in a space `lr: true` is a slip, not a learning rate
    if isinstance(value, bool):
        raise ValueError("Input should be a number")
    return value


Real = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
Whole = Annotated[int, Field(strict=True)]


class TrainSettings(BaseModel):
    """How to train: everything in a config that is not the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    lr: Annotated[Real, Field(gt=0)] = 1e-3
    momentum: Annotated[Real, Field(ge=0, lt=1)] = 0.9  # sgd only
    weight_decay: Annotated[Real, Field(ge=0, lt=1)] = 0.0
    batch_size: Annotated[Whole, Field(ge=1)] = 128
    # the learning-rate schedule over the epochs a run is planned for (a trial's max epochs,
    # a retrain's epochs): step multiplies lr by lr_decay every decay_every epochs (the users'
    # hand-tuned runs); cosine anneals it to 0 after a linear warmup; onecycle (Smith's 1cycle)
    # warms up from lr/25 to lr, then anneals to lr/10^4
    schedule: Literal[SCHEDULES] = "step"  # type: ignore[valid-type]
    lr_decay: Annotated[Real, Field(gt=0, le=1)] = 1.0  # step: multiply the learning rate by this ...
    decay_every: Annotated[Whole, Field(ge=1)] = 1  # ... every this many epochs
    # cosine, onecycle: the share of the training steps spent warming up (onecycle: 0.25 when 0)
    warmup: Annotated[Real, Field(ge=0, lt=1)] = 0.0
    label_smoothing: Annotated[Real, Field(ge=0, lt=1)] = 0.0
    augment: Literal[AUGMENTS] = "none"  # type: ignore[valid-type]
    # random erasing (Zhong et al.): the chance that an image gets a random rectangle blanked
    erasing: Annotated[Real, Field(ge=0, le=1)] = 0.0
    # random horizontal flips; only on data whose mirror images are still their class
    # (Bundle.mirror_safe: clothing yes, digits no), checked before a search starts
    flip: Annotated[bool, Field(strict=True)] = False
    # class imbalance, as the users' reports handled it: draw rare classes more often, or
    # weight the loss by inverse class frequency
    balance: Literal[BALANCES] = "none"  # type: ignore[valid-type]

    @classmethod
    def parse(cls, values: dict) -> "TrainSettings":
        """TrainSettings(**values), or a UserError naming the first bad setting."""
        try:
            return cls(**values)
        except ValidationError as err:
            raise UserError(describe_error(err)) from None

    @classmethod
    def check_value(cls, name: str, value) -> None:
        """Raises a UserError when training setting `name` cannot take `value`."""
        cls.parse({name: value})


TRAIN_KEYS = tuple(TrainSettings.model_fields)


def describe_error(err: ValidationError) -> str:
    """pydantic's first complaint, in one line: `training setting 'lr': must be greater than 0, not -1.0`."""
    first = err.errors()[0]
    name = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown training setting {name!r}; the training settings are {', '.join(TRAIN_KEYS)}"
    return f"training setting {name!r}: {validation_message(first)}"


@dataclass(frozen=True)
class TrialConfig:
    family: str
    model_args: dict = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)

    @classmethod
    def from_flat(cls, flat: dict, family: str) -> "TrialConfig":
        """`family` is the space's; a `family` key in the config (a space across families) wins."""
        family = flat.get("family", family)
        prefix = f"{family}."
        model_flat, train = {}, {}
        for key, value in flat.items():
            if key == "family":
                continue
            if key.startswith(prefix):
                model_flat[key[len(prefix):]] = value
            elif key in TRAIN_KEYS:
                train[key] = value
            else:
                raise UserError(
                    f"config key {key!r} is neither a {family!r} model parameter ({prefix}...) "
                    f"nor a training setting ({', '.join(sorted(TRAIN_KEYS))})"
                )
        return cls(family=family, model_args=gather_indexed(model_flat), train=TrainSettings.parse(train))


def gather_indexed(flat: dict) -> dict:
    """{"filters_1": 32, "kernel": 3, "filters_2": 64} -> {"filters": [32, 64], "kernel": 3}.

    A gathered list takes the place of its first entry, so order is kept.
    """
    args: dict = {}
    for key, value in flat.items():
        match = _INDEXED.match(key)
        if match:
            args.setdefault(match["name"], {})[int(match["index"])] = value
        else:
            args[key] = value
    return {key: [v[i] for i in sorted(v)] if isinstance(v, dict) else v for key, v in args.items()}
