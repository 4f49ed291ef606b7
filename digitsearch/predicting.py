"""`digitsearch predict`: an exported model over a CSV or IDX folder -> ImageId,Label."""
from __future__ import annotations

from pathlib import Path

from digitsearch import data, engine, export, models
from digitsearch.errors import UserError


def run(model_path: Path, source: str, output: Path) -> str:
    model, meta = export.load_model(model_path)
    if meta.get("task", "image") != "image":
        raise UserError(f"{model_path} is a {meta['task']} model; `predict` reads images (its test predictions "
                        "are in predictions.csv beside it)")
    height, width = models.image_hw(meta["image_size"])
    images = data.read_images(source, expect_pixels=height * width)
    if images.images.shape[1:] != (height, width):
        raise UserError(f"{source} holds {images.images.shape[1]}x{images.images.shape[2]} images "
                        f"but the model expects {height}x{width}")
    tensors = engine.to_tensors(images.images, None, meta["normalisation"]["mean"], meta["normalisation"]["std"])
    predicted = engine.predict(model, tensors)
    export.write_predictions(output, predicted)
    summary = f"wrote {len(predicted)} predictions to {output}"
    if images.labels is not None:
        summary += f"; accuracy against the file's labels {(predicted == images.labels).mean():.4f}"
    return summary
