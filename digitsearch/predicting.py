"""`digitsearch predict`: an exported model over a CSV, an IDX folder or a folder of the
user's own PNG/JPEG digits -> ImageId,Label (file,Label for images), optionally with
every class's probability."""
from __future__ import annotations

from pathlib import Path

import torch

from digitsearch import data, engine, export, models
from digitsearch.data import idx, user_images
from digitsearch.errors import UserError


def run(model_path: Path, source: str, output: Path, invert: str | None = None, probs: bool = False) -> str:
    """invert (auto|yes|no, default auto) applies to image folders only; probs adds prob_<class> columns."""
    if invert is not None:
        user_images.check_invert(invert)
    model, meta = export.load_model(model_path)
    if meta.get("task", "image") != "image":
        raise UserError(f"{model_path} is a {meta['task']} model; `predict` reads images (its test predictions "
                        "are in predictions.csv beside it)")
    height, width = models.image_hw(meta["image_size"])
    files, images, labels = _read(source, height, width, invert)
    tensors = engine.to_tensors(images, None, meta["normalisation"]["mean"], meta["normalisation"]["std"])
    logits = engine.predict_logits(model, tensors.x)
    predicted = logits.argmax(1).numpy()
    probabilities = torch.softmax(logits, 1).numpy() if probs else None
    export.write_predictions(output, predicted, files=files, probs=probabilities, class_names=meta["class_names"])
    summary = f"wrote {len(predicted)} predictions to {output}"
    if labels is not None:
        summary += f"; accuracy against the file's labels {(predicted == labels).mean():.4f}"
    return summary


def is_image_folder(source: Path) -> bool:
    """A folder without IDX files: the user's own images (list_images says when there are none)."""
    return source.is_dir() and not any(idx.has_idx(source, role) for role in idx.ROLES)


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
