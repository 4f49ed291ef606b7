"""The VGG family: blocks of 3x3 convs, widths doubling, a 2x2 max pool after each block.

Block k has `convs` 3x3 "same" convs of base_width * 2**(k-1) channels (capped at
max_width), each conv -> [batchnorm] -> relu, then a 2x2 max pool; a flattened dense
head follows. Pooling halves each side that still has 2 or more pixels and leaves a
1-pixel side alone, so 5 blocks work on 28x28 (28-14-7-3-1-1) and on 28x84 instead
of every fifth block being infeasible.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from digitsearch.models._layers import dense_head, per_block
from digitsearch.models._registry import InvalidArchitecture, image_hw, register


def _block(ch_in: int, ch_out: int, convs: int, batchnorm: bool, pool: tuple[int, int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers.append(nn.Conv2d(ch_in, ch_out, 3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(ch_out))
        layers.append(nn.ReLU(inplace=True))
        ch_in = ch_out
    if pool != (1, 1):
        layers.append(nn.MaxPool2d(pool))
    return layers


def _pool_kernel(height: int, width: int) -> tuple[int, int]:
    """2x2, but 1 along a side that is down to 1 pixel (pooling it would leave nothing)."""
    return min(2, height), min(2, width)


@register("vgg")
def vgg(
    blocks: int = 3,
    convs: int | Sequence[int] = 2,
    base_width: int = 16,
    max_width: int = 512,
    batchnorm: bool = False,
    dense_layers: int = 0,
    dense: Sequence[int] = (),
    dropout: float = 0.0,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | Sequence[int] = 28,
) -> nn.Sequential:
    """VGG-style: 2-5 blocks of 1-3 3x3 convs, widths doubling from base_width, max pooling, dense head."""
    if min(blocks, base_width, max_width) < 1:
        raise InvalidArchitecture(f"blocks, base_width and max_width must be at least 1 "
                                  f"(got {blocks}, {base_width}, {max_width})")
    convs = per_block(convs, blocks, "convs")
    if min(convs) < 1:
        raise InvalidArchitecture(f"every block needs at least one conv (got convs {convs})")
    dense = per_block(dense, dense_layers, "dense", "dense layers")
    height, width = image_hw(image_size)
    layers: list[nn.Module] = []
    ch = in_channels
    for block, n_convs in enumerate(convs):
        ch_out = min(base_width * 2**block, max_width)
        kernel = _pool_kernel(height, width)
        layers += _block(ch, ch_out, n_convs, batchnorm, kernel)
        height, width, ch = height // kernel[0], width // kernel[1], ch_out
    layers.append(nn.Flatten())
    layers += dense_head(ch * height * width, dense, dropout, num_classes)
    return nn.Sequential(*layers)
