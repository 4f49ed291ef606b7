"""The LeNet-5 family: LeCun's net as the users built it, and a VGG-style flavour of it.

Two conv stages (conv -> [batchnorm] -> activation -> 2x2 pool) then a dense head.
The defaults are exactly the classic net for 28x28 MNIST: 5x5 convs of 6 and 16
filters, the first one padded by 2 (LeNet was drawn for 32x32 inputs), tanh, average
pooling, dense 120-84: 61,706 parameters; tests pin the count.

The "vgg" flavour replaces each 5x5 conv by two 3x3 convs with the same output
channels: the same receptive field and the same feature-map sizes, one more activation.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from digitsearch.models._layers import dense_head
from digitsearch.models._registry import InvalidArchitecture, image_hw, register

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
FLAVOURS = ("classic", "vgg")


def _check(activation: str, pool: str, flavour: str, filters: Sequence[int], padding: int) -> None:
    if activation not in ACTIVATIONS or pool not in POOLS or flavour not in FLAVOURS:
        raise InvalidArchitecture(
            f"activation must be tanh|relu, pool avg|max and flavour classic|vgg "
            f"(got {activation!r}, {pool!r}, {flavour!r})"
        )
    if len(filters) != 2:
        raise InvalidArchitecture(f"filters has {len(filters)} entries for LeNet's 2 conv stages")
    if padding < 0:
        raise InvalidArchitecture(f"padding must be at least 0 (got {padding})")


def _convs(ch_in: int, ch_out: int, padding: int, flavour: str, batchnorm: bool) -> list[nn.Conv2d]:
    """The stage's convs; each shrinks the map by 4 (5x5) or 2 (3x3) before padding."""
    if flavour == "classic":
        return [nn.Conv2d(ch_in, ch_out, 5, padding=padding, bias=not batchnorm)]
    # two 3x3 convs share the padding (the first takes the odd pixel), so the map sizes
    # are those of the classic net whatever the padding
    first, second = (padding + 1) // 2, padding // 2
    return [
        nn.Conv2d(ch_in, ch_out, 3, padding=first, bias=not batchnorm),
        nn.Conv2d(ch_out, ch_out, 3, padding=second, bias=not batchnorm),
    ]


def _stage(ch_in, ch_out, padding, flavour, batchnorm, activation, pool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for conv in _convs(ch_in, ch_out, padding, flavour, batchnorm):
        layers.append(conv)
        if batchnorm:
            layers.append(nn.BatchNorm2d(ch_out))
        layers.append(ACTIVATIONS[activation]())
    layers.append(POOLS[pool](2))
    return layers


def _next_size(size: int, padding: int, stage: int) -> int:
    """One side of the map after a stage: a 5x5 conv (or two 3x3), then a 2x2 pool."""
    size = size + 2 * padding - 4
    if size < 2:
        raise InvalidArchitecture(f"stage {stage}: the feature map shrinks to nothing")
    return size // 2


@register("lenet")
def lenet(
    activation: str = "tanh",
    pool: str = "avg",
    padding: int = 2,
    flavour: str = "classic",
    filters: Sequence[int] = (6, 16),
    dense: Sequence[int] = (120, 84),
    batchnorm: bool = False,
    dropout: float = 0.0,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | Sequence[int] = 28,
) -> nn.Sequential:
    """LeNet-5: two 5x5 conv stages (or 3x3 pairs, flavour vgg), tanh|relu, avg|max pooling, dense 120-84 head."""
    filters = list(filters)
    _check(activation, pool, flavour, filters, padding)
    height, width = image_hw(image_size)
    layers: list[nn.Module] = []
    ch = in_channels
    # only the first conv is padded, as in LeNet-5 on 28x28; the second is always valid
    for stage, (ch_out, pad) in enumerate(zip(filters, (padding, 0)), start=1):
        layers += _stage(ch, ch_out, pad, flavour, batchnorm, activation, pool)
        height, width, ch = _next_size(height, pad, stage), _next_size(width, pad, stage), ch_out
    layers.append(nn.Flatten())
    layers += dense_head(ch * height * width, list(dense), dropout, num_classes, ACTIVATIONS[activation])
    return nn.Sequential(*layers)
