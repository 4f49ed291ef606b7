"""A small basic-block ResNet for 28x28 digits (He et al., the CIFAR-style variant).

A 3x3 stem conv + BN + ReLU (no 7x7 conv or max pool: a 28x28 image has no pixels
to spare; `stem_stride` 2 halves it once, for a quarter of the cost), then `stages` stages
of basic blocks: the first stage keeps base_width channels and the full resolution, each
later one doubles the width and halves the resolution with a stride-2 first conv. A
shortcut is the identity, or a 1x1 conv + BN where the block changes the shape. Global
average pooling, [dropout], a linear head.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from digitsearch.models._layers import per_block
from digitsearch.models._registry import InvalidArchitecture, register


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU."""

    def __init__(self, ch_in: int, ch_out: int, stride: int):
        super().__init__()
        # no conv biases: each conv feeds a batchnorm, whose shift does the same job
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch_out)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or ch_in != ch_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(ch_in, ch_out, 1, stride=stride, bias=False), nn.BatchNorm2d(ch_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register("resnet")
def resnet(
    stages: int = 3,
    blocks: int | Sequence[int] = 2,
    base_width: int = 16,
    stem_stride: int = 1,
    dropout: float = 0.0,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | Sequence[int] = 28,
) -> nn.Sequential:
    """ResNet: 3x3 stem (stride 1|2), 2-4 stages of 1-3 basic blocks, width doubling from base_width, GAP, linear."""
    if stages < 1 or base_width < 1 or stem_stride not in (1, 2):
        raise InvalidArchitecture(f"stages and base_width must be at least 1 and stem_stride 1 or 2 "
                                  f"(got {stages}, {base_width}, {stem_stride})")
    blocks = per_block(blocks, stages, "blocks", "stages")
    if min(blocks) < 1:
        raise InvalidArchitecture(f"every stage needs at least one block (got blocks {blocks})")
    # image_size is accepted like every image family's, but global average pooling makes
    # the net independent of it: a stride-2 conv (padding 1) never shrinks a side below 1
    del image_size
    layers: list[nn.Module] = [
        # full resolution costs as much as every later stage together: at base 16, three
        # stages of two blocks are 40 MFLOPs per 28x28 image with stride 1, 10 with stride 2
        nn.Conv2d(in_channels, base_width, 3, stride=stem_stride, padding=1, bias=False),
        nn.BatchNorm2d(base_width),
        nn.ReLU(inplace=True),
    ]
    ch = base_width
    for stage, n_blocks in enumerate(blocks):
        ch_out = base_width * 2**stage
        for block in range(n_blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(ch, ch_out, stride))
            ch = ch_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(ch, num_classes))
    return nn.Sequential(*layers)
