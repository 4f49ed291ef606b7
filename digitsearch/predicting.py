"""`digitsearch predict`: an exported model over a CSV or IDX folder -> ImageId,Label."""
from __future__ import annotations

from pathlib import Path

from digitsearch import data, engine, export
from digitsearch.errors import UserError


def run(model_path: Path, source: str, output: Path) -> str:
    model, meta = export.load_model(model_path)
    size = meta["image_size"]
    images = data.read_images(source, expect_pixels=size * size)
    if images.images.shape[1:] != (size, size):
        raise UserError(f"{source} holds {images.images.shape[1]}x{images.images.shape[2]} images "
                        f"but the model expects {size}x{size}")
    tensors = engine.to_tensors(images.images, None, meta["normalisation"]["mean"], meta["normalisation"]["std"])
    predicted = engine.predict(model, tensors.x)
    export.write_predictions(output, predicted)
    summary = f"wrote {len(predicted)} predictions to {output}"
    if images.labels is not None:
        summary += f"; accuracy against the file's labels {(predicted == images.labels).mean():.4f}"
    return summary
