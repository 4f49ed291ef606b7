"""Pieces several families share, written once: per-block kwargs and the dense head."""
from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from digitsearch.models._registry import InvalidArchitecture


def per_block(value, count: int, what: str, unit: str = "blocks") -> list:
    """Accept one value for every block (stage, ...) or a list with one per block."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count:
        raise InvalidArchitecture(f"{what} has {len(values)} entries for {count} {unit}")
    return values


def dense_head(features: int, dense: Sequence[int], dropout: float, num_classes: int,
               activation: Callable[[], nn.Module] = lambda: nn.ReLU(inplace=True)) -> list[nn.Module]:
    """[dropout] -> linear -> activation per hidden width, then [dropout] -> the output layer."""
    layers: list[nn.Module] = []
    for width in [*dense, num_classes]:
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(features, width), activation()]
        features = width
    layers.pop()  # no activation after the output layer: the loss takes logits
    return layers
