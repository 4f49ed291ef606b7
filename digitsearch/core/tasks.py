"""What a model maps from and to, and how it is scored: the two tasks the engine serves.

image:    (N, 1, H, W) standardised pixels -> (N, classes) logits; accuracy per image.
sequence: (N, L, vocab) one-hot symbols -> (N, T, vocab) logits (the LSTM adder);
          one cross-entropy over every output position, exact-match accuracy per sequence.

The engine's loop is the same for both; it asks the task for inputs, loss and scores.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ImageTask:
    name = "image"

    def inputs(self, images: np.ndarray, mean: float, std: float, device) -> Tensor:
        # torch.tensor copies: arrays from Ray's object store are read-only, and we need floats anyway
        x = torch.tensor(images, dtype=torch.float32, device=device)
        return ((x / 255.0 - mean) / std).unsqueeze(1)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        return model(x)

    def loss(self, logits: Tensor, y: Tensor, weight: Tensor | None = None, smoothing: float = 0.0) -> Tensor:
        if weight is not None and len(weight) < logits.shape[1]:
            # classes absent from the training labels (the top ones) get weight 0, like absent ones below
            weight = F.pad(weight, (0, logits.shape[1] - len(weight)))
        return F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)

    def correct(self, logits: Tensor, y: Tensor) -> Tensor:
        return (logits.argmax(1) == y).sum()

    def predict(self, logits: Tensor) -> Tensor:
        return logits.argmax(1)


class SequenceTask:
    name = "sequence"

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def inputs(self, ids: np.ndarray, mean: float, std: float, device) -> Tensor:
        ids = torch.tensor(ids, dtype=torch.long, device=device)
        return F.one_hot(ids, self.vocab_size).float()

    def forward(self, model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        # the targets go in while training, for teacher forcing; never at evaluation
        return model(x, y) if model.training and y is not None else model(x)

    def loss(self, logits: Tensor, y: Tensor, weight: Tensor | None = None, smoothing: float = 0.0) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), label_smoothing=smoothing)

    def correct(self, logits: Tensor, y: Tensor) -> Tensor:
        """Exact match: a sum counts only when every symbol of it is right."""
        return (logits.argmax(-1) == y).all(1).sum()

    def predict(self, logits: Tensor) -> Tensor:
        return logits.argmax(-1)


def for_bundle(bundle) -> ImageTask | SequenceTask:
    return SequenceTask(len(bundle.vocab)) if bundle.task == "sequence" else ImageTask()


def for_model_file(meta: dict) -> ImageTask | SequenceTask:
    """The task of an exported model.pt (files written before tasks existed are image models)."""
    if meta.get("task") == "sequence":
        return SequenceTask(int(meta["model_args"]["vocab_size"]))
    return ImageTask()
