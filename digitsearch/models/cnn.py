"""The plain CNN family: the nets the users' reports built by hand in Keras.

Conv blocks ((conv -> [batchnorm] -> relu) x convs -> [pool] -> [dropout]) then a head
(flatten or global average pool) with dense layers. With the right kwargs it is
exactly the Keras "simple MNIST convnet" (34,826 parameters) and the reports'
3-conv/dense-64 net (256,837 with 5 classes); tests pin both counts.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from digitsearch.models._layers import dense_head, per_block
from digitsearch.models._registry import InvalidArchitecture, image_hw, register

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _conv_block(ch_in, ch_out, kernel, same, batchnorm, pool, conv_dropout, convs: int = 1) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for conv in range(convs):
        layers.append(nn.Conv2d(ch_in if conv == 0 else ch_out, ch_out, kernel, padding=kernel // 2 if same else 0,
                                bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(ch_out))
        layers.append(nn.ReLU(inplace=True))
    if pool != "none":
        layers.append(POOLS[pool](2))
    if conv_dropout > 0:
        layers.append(nn.Dropout(conv_dropout))
    return layers


def _next_size(size: int, kernel: int, same: bool, pool: str, block: int, convs: int = 1) -> int:
    """One side of the feature map after a block; called for height and width alike."""
    size = size if same else size - convs * (kernel - 1)
    if size < 1 or (pool != "none" and size < 2):
        raise InvalidArchitecture(f"block {block}: the feature map shrinks to nothing")
    return size // 2 if pool != "none" else size


@register("cnn")
def cnn(
    depth: int,
    filters: Sequence[int],
    pool: str | Sequence[str] = "max",
    kernel: int = 3,
    convs: int = 1,
    padding: str = "same",
    batchnorm: bool = False,
    conv_dropout: float = 0.0,
    head: str = "flatten",
    dense_layers: int = 0,
    dense: Sequence[int] = (),
    dropout: float = 0.0,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | Sequence[int] = 28,
) -> nn.Sequential:
    """Plain CNN: 1-5 conv blocks of 1-2 convs (filters, kernel, padding, batchnorm, pooling, dropout), flatten/GAP,
    dense layers. Two 3x3 convs a block see as far as one 5x5 with fewer weights (VGG's argument)."""
    filters = per_block(filters, depth, "filters", "conv blocks")
    pools = per_block(pool, depth, "pool", "conv blocks")
    dense = per_block(dense, dense_layers, "dense", "dense layers")
    if padding not in ("same", "valid") or head not in ("flatten", "gap") or convs < 1:
        raise InvalidArchitecture("padding must be same|valid, head flatten|gap and convs at least 1")
    same = padding == "same"
    layers: list[nn.Module] = []
    (height, width), ch = image_hw(image_size), in_channels
    for block, (ch_out, pool_kind) in enumerate(zip(filters, pools), start=1):
        layers += _conv_block(ch, ch_out, kernel, same, batchnorm, pool_kind, conv_dropout, convs)
        height = _next_size(height, kernel, same, pool_kind, block, convs)
        width = _next_size(width, kernel, same, pool_kind, block, convs)
        ch = ch_out
    if head == "gap":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        features = ch
    else:
        layers.append(nn.Flatten())
        features = ch * height * width
    layers += dense_head(features, dense, dropout, num_classes)
    return nn.Sequential(*layers)
