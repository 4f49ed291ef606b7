"""Predicting with an exported model.pt: the Predictor (`digitsearch.load_model`) and
`digitsearch predict` over a CSV, an IDX folder or a folder of the user's own PNG/JPEG digits
-> ImageId,Label (file,Label for images), optionally with every class's probability."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitsearch import data, models
from digitsearch.core import engine, tasks
from digitsearch.data import class_folders, idx, labelset, user_images
from digitsearch.errors import UserError
from digitsearch.final import export


class Predictor:
    """A trained model with what it needs to read raw inputs: `predict(images)` takes uint8
    pixels as the datasets hold them (ink high, 0-255) and returns (labels, probabilities)."""

    def __init__(self, model: torch.nn.Module, meta: dict):
        self.model, self.meta = model, meta
        self.task = tasks.for_model_file(meta)

    @classmethod
    def load(cls, path: str | Path) -> "Predictor":
        return cls(*export.load_model(Path(path)))

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def labels(self) -> list | None:
        """Class k's label as the training data wrote it; None in a model file older than labels."""
        return self.meta.get("labels")

    @property
    def image_hw(self) -> tuple[int, int]:
        return models.image_hw(self.meta["image_size"])

    def predict(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, H, W) or one (H, W), or Kaggle rows (N, H*W) -> labels (N,), as the training
        data wrote them (numbers or words), and softmax probabilities (N, classes) in class order
        (`labels`, `class_names`). A sequence model takes symbol ids (N, in_length) and returns ids
        (N, out_length) and probabilities (N, out_length, vocab)."""
        x = self._inputs(inputs)
        logits = engine.predict_logits(self.model, x)
        predicted = self.task.predict(logits).numpy()
        if self.task.name == "image":
            predicted = labelset.decode(predicted, self.labels)
        return predicted, torch.softmax(logits, -1).numpy()

    def _inputs(self, inputs) -> torch.Tensor:
        array = np.asarray(inputs)
        if self.task.name == "sequence":
            if array.ndim != 2:
                raise UserError(f"this sequence model takes symbol ids of shape (N, length), got {array.shape}")
            return self.task.inputs(array, 0.0, 1.0, "cpu")
        array = self._as_images(array)
        norm = self.meta["normalisation"]
        return engine.to_tensors(array, None, norm["mean"], norm["std"]).x

    def _as_images(self, array: np.ndarray) -> np.ndarray:
        height, width = self.image_hw
        if array.ndim == 2 and array.shape == (height, width):
            array = array[None]
        elif array.ndim == 2 and array.shape[1] == height * width:
            array = array.reshape(-1, height, width)  # Kaggle CSV rows
        if array.ndim != 3 or array.shape[1:] != (height, width):
            raise UserError(f"this model takes images of {height}x{width} pixels: (N, {height}, {width}) or "
                            f"(N, {height * width}); got an array of shape {array.shape}")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise UserError("pixels must be 0-255 (uint8, ink high, as MNIST); scale them before predicting")
        return array


def run(model_path: Path, source: str, output: Path, invert: str | None = None, probs: bool = False) -> str:
    """invert (auto|yes|no, default auto) applies to image folders only; probs adds prob_<class> columns."""
    if invert is not None:
        user_images.check_invert(invert)
    predictor = Predictor.load(model_path)
    if predictor.task.name != "image":
        raise UserError(f"{model_path} is a {predictor.meta['task']} model; `predict` reads images (its test "
                        "predictions are in predictions.csv beside it)")
    files, images, labels = _read(source, *predictor.image_hw, invert)
    predicted, probabilities = predictor.predict(images)
    export.write_predictions(output, predicted, files=files, probs=probabilities if probs else None,
                             class_names=predictor.class_names)
    summary = f"wrote {len(predicted)} predictions to {output}"
    if labels is not None:
        summary += f"; accuracy against the file's labels {(predicted == labels).mean():.4f}"
    return summary


def is_image_folder(source: Path) -> bool:
    """A folder without IDX files or class folders: the user's own images (list_images says when
    there are none)."""
    return (source.is_dir() and not idx.holds_idx(source)
            and not class_folders.looks_like(source))


def _read(source: str, height: int, width: int, invert: str | None):
    """(file names or None, uint8 (N, H, W) images, labels or None)."""
    folder = Path(source).expanduser()
    if is_image_folder(folder):
        if height != width:
            raise UserError(f"this model takes {height}x{width} images (numbers); a folder of single-digit "
                            "images needs a model trained on square digits such as MNIST's 28x28")
        files, images = user_images.read_folder(folder, height, invert or "auto")
        return files, images, None
    if invert is not None:
        raise UserError("--invert applies to a folder of PNG/JPEG images only; CSV and IDX images are "
                        "already white on black")
    images = data.read_images(source, expect_pixels=height * width)
    if images.images.shape[1:] != (height, width):
        raise UserError(f"{source} holds {images.images.shape[1]}x{images.images.shape[2]} images "
                        f"but the model expects {height}x{width}")
    return None, images.images, images.labels
