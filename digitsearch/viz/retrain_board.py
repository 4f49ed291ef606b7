"""TensorBoard for the retrain: results/<name>/tensorboard/final/ (final-<trial>/ for `best --trial`).

Curves per epoch, and for image models the pictures the users' reports drew by hand: the
test confusion matrix, a grid of misclassified test images, the first conv layer's filters
and its activation maps for one test image. No Ray here: retrain runs without it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from digitsearch.store.layout import FINAL_DIR, retrain_run_dir
from digitsearch.viz import plots

CURVES = ("train_loss", "train_acc", "epoch_seconds", "images_per_second")


def write(experiment: Path, history: list[dict], *, run: str = FINAL_DIR, model: nn.Module | None = None, bundle=None,
          test_x: torch.Tensor | None = None, predicted: np.ndarray | None = None) -> Path:
    """Curves always; pictures when the model reads images and the test split has labels."""
    folder = retrain_run_dir(experiment, run)
    # a retrain replaces final/, so its run replaces the last one too: TensorBoard would
    # otherwise draw both runs' points at the same steps as one jagged curve
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    with SummaryWriter(str(folder)) as writer:
        for epoch, metrics in enumerate(history, start=1):
            for key in CURVES:
                writer.add_scalar(key, metrics[key], epoch)
        if model is None or bundle is None or bundle.task != "image" or test_x is None:
            return folder
        labels = bundle.test.labels
        if labels is not None and predicted is not None:
            writer.add_scalar("test_accuracy", float((labels == predicted).mean()), len(history))
            matrix = confusion_matrix(labels, predicted, labels=list(range(bundle.num_classes)))
            writer.add_figure("test/confusion_matrix", plots.confusion_matrix_figure(matrix, bundle.class_names))
            writer.add_figure("test/misclassified", plots.misclassified_figure(
                bundle.test.images, labels, predicted, bundle.class_names))
        for tag, figure in (("model/first_conv_filters", plots.filters_figure(model)),
                            ("model/first_conv_activations", plots.activations_figure(model, test_x[:1]))):
            if figure is not None:  # families without convolutions (lstm) have neither
                writer.add_figure(tag, figure)
    return folder
