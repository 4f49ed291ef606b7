"""Parse the flat Tune config once, at the boundary (after nanoGPT's GPTConfig).

A trial's config is a flat dict like {"cnn.depth": 2, "cnn.filters_1": 32, "lr": 1e-3}.
Keys prefixed by the family become model kwargs, with `name_1, name_2, ...` gathered
into a list `name`; unprefixed keys are training settings. An unknown key is an error,
not a silent default, and a model never sees the Tune dict.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from digitsearch.errors import UserError

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
AUGMENTS = ("none", "light", "strong")
BALANCES = ("none", "oversample", "class_weight")
_INDEXED = re.compile(r"^(?P<name>.+)_(?P<index>\d+)$")


@dataclass(frozen=True)
class TrainSettings:
    """How to train: everything in a config that is not the model."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    batch_size: int = 128
    lr_decay: float = 1.0  # multiply the learning rate by this ...
    decay_every: int = 1  # ... every this many epochs
    label_smoothing: float = 0.0
    augment: str = "none"
    # class imbalance, as the users' reports handled it: draw rare classes more often, or
    # weight the loss by inverse class frequency
    balance: str = "none"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.augment not in AUGMENTS:
            raise UserError(f"augment {self.augment!r} is not one of {', '.join(AUGMENTS)}")
        if self.balance not in BALANCES:
            raise UserError(f"balance {self.balance!r} is not one of {', '.join(BALANCES)}")


TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainSettings)}


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
        return cls(family=family, model_args=gather_indexed(model_flat), train=TrainSettings(**train))


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
