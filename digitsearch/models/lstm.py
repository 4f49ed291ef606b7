"""The LSTM family: read the image row by row, classify from the final hidden state.

A (N, C, H, W) image becomes a sequence of H steps, each the C*W pixels of one row
(channels are folded into the features, so 28x84 numbers give 28 steps of 84). The
head sees the last layer's final hidden state: for a bidirectional LSTM the forward
direction's state after the last row and the backward one's after the first row,
concatenated, so its input is twice `hidden`. This is the "LSTM width" axis on images.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from digitsearch.models._registry import InvalidArchitecture, image_hw, register


class RowLSTM(nn.Module):
    def __init__(self, row_features: int, hidden: int, layers: int, bidirectional: bool,
                 dropout: float, num_classes: int):
        super().__init__()
        # torch applies LSTM dropout between layers only, and warns if asked with one layer
        self.lstm = nn.LSTM(row_features, hidden, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(n, h, c * w)  # (N, H steps, C*W features)
        _, (h_n, _) = self.lstm(rows)
        # h_n is (layers * directions, N, hidden), last layer last: its forward state has
        # read every row, and so has the backward one (it ends on the first row)
        final = torch.cat(list(h_n[-self.directions:]), dim=1)
        return self.head(self.dropout(final))


@register("lstm")
def lstm(
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | Sequence[int] = 28,
) -> RowLSTM:
    """Row LSTM: image rows as a sequence into a 1-3 layer (bi)LSTM of 32-256 units, head on the final state."""
    if hidden < 1 or layers < 1:
        raise InvalidArchitecture(f"hidden and layers must be at least 1 (got {hidden}, {layers})")
    _, width = image_hw(image_size)
    return RowLSTM(in_channels * width, hidden, layers, bidirectional, dropout, num_classes)
