"""Matplotlib figures of a trained image model: what the users' reports drew by hand.

Each function returns a matplotlib Figure made without pyplot: no backend is chosen and no
global state changes (a notebook that imports the retrain keeps its own backend), and nothing
needs a display. Callers save it as a PNG or hand it to TensorBoard. Images are uint8 arrays
(N, H, W) as the data bundles hold them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn


def new_figure(width: float, height: float) -> Figure:
    """A figure of its own (savefig renders it with Agg); never registered with pyplot."""
    return Figure(figsize=(width, height))


MAX_MATRIX_INCHES = 20.0  # 256 or 1,000 classes still make a figure a screen and a PNG can hold
MAX_TICKS = 60  # class names beyond this many overlap: every k-th class is named instead


def confusion_matrix_figure(matrix: np.ndarray, class_names: list[str]):
    size = min(MAX_MATRIX_INCHES, max(4.0, 0.45 * len(class_names) + 2))
    fig = new_figure(size, size * 0.9)
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    step = max(1, math.ceil(len(class_names) / MAX_TICKS))
    ticks = range(0, len(class_names), step)
    names = [class_names[k] for k in ticks]
    ax.set_xticks(ticks, names, rotation=90 if len(class_names) > 12 else 0)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix (test set)")
    if len(class_names) <= 20:  # counts in the cells while they stay legible
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), count in np.ndenumerate(matrix):
            ax.text(col, row, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > threshold else "black")
    fig.tight_layout()
    return fig


def misclassified_figure(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                         class_names: list[str], limit: int = 25):
    """A grid of up to `limit` wrongly predicted test images, titled true -> predicted."""
    wrong = np.flatnonzero(labels != predicted)[:limit]
    columns = 5
    rows = max(1, math.ceil(len(wrong) / columns))
    fig = new_figure(columns * 1.6, rows * 1.8)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong):
        ax.imshow(images[index], cmap="gray")
        ax.set_title(f"{class_names[labels[index]]} -> {class_names[predicted[index]]}", fontsize=9)
    fig.suptitle(f"misclassified test images (true -> predicted), {len(wrong)} of "
                 f"{int((labels != predicted).sum())} shown" if len(wrong) else "no misclassified test images")
    fig.tight_layout()
    return fig


def first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


GRID_LIMIT = 32


def _shown(count: int) -> str:
    return f", first {GRID_LIMIT} shown" if count > GRID_LIMIT else ""


def _grid(maps: np.ndarray, title: str, limit: int = GRID_LIMIT):
    """Tiles of 2-D maps, each scaled to its own range (what matters is the pattern)."""
    maps = maps[:limit]
    columns = min(8, len(maps))
    rows = math.ceil(len(maps) / columns)
    fig = new_figure(columns * 1.2, rows * 1.2 + 0.6)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for index, (ax, tile) in enumerate(zip(axes.flat, maps)):
        ax.imshow(tile, cmap="gray")
        ax.set_title(str(index), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def filters_figure(model: nn.Module):
    """The first conv layer's kernels (averaged over input channels), or None without one."""
    conv = first_conv(model)
    if conv is None:
        return None
    weights = conv.weight.detach().cpu().float().mean(1).numpy()
    averaged = f" (mean of {conv.in_channels} input channels)" if conv.in_channels > 1 else ""
    return _grid(weights, f"first conv layer: {len(weights)} filters of "
                          f"{weights.shape[1]}x{weights.shape[2]}{averaged}{_shown(len(weights))}")


def activations_figure(model: nn.Module, x: torch.Tensor):
    """The first conv layer's output maps for one standardised input (1, 1, H, W)."""
    conv = first_conv(model)
    if conv is None:
        return None
    captured = {}
    hook = conv.register_forward_hook(lambda module, inputs, output: captured.setdefault("maps", output))
    model.eval()
    with torch.inference_mode():
        model(x)
    hook.remove()
    maps = captured["maps"][0].detach().cpu().float().numpy()
    return _grid(maps, f"first conv layer activations for one test image ({len(maps)} maps{_shown(len(maps))})")


def curves_figure(history: list[dict]):
    """Retrain loss and accuracy per epoch."""
    epochs = range(1, len(history) + 1)
    fig = new_figure(9, 3.4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    acc_ax.plot(epochs, [h["train_acc"] for h in history], marker="o")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("training accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.suptitle("retrain on train + validation")
    fig.tight_layout()
    return fig
