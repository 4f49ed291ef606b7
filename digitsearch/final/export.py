"""Self-describing model files and the Kaggle predictions CSV.

model.pt holds everything needed to rebuild and use the model (after nanoGPT's
checkpoints, which keep model_args beside the weights): family, model kwargs,
state_dict, input normalisation and class names. Only plain containers, strings,
numbers and tensors go in, so it loads with torch.load(weights_only=True). An ensemble
(`best --retrain --ensemble K` or `--tta`) is family "ensemble", whose model_args list each
member's family and kwargs and the test-time views (final.ensemble).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from digitsearch import models
from digitsearch.errors import UserError

FORMAT = "digitsearch-model/1"


def save_model(path: Path, model: nn.Module, *, family: str, model_args: dict, mean: float, std: float,
               class_names: list[str], image_size: int | list[int] | None, task: str = "image",
               vocab: str | None = None, labels: list | None = None, extra: dict | None = None) -> None:
    """image_size: int or [height, width] for image models; vocab: the alphabet of sequence models;
    labels: class k's label as the user's data wrote it (data.labelset), what predictions give back."""
    torch.save({
        "format": FORMAT,
        "family": family,
        "task": task,
        "model_args": dict(model_args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "normalisation": {"mean": float(mean), "std": float(std)},
        "class_names": list(class_names),
        "labels": list(labels) if labels is not None else list(range(len(class_names))),
        "image_size": image_size,
        "vocab": vocab,
        **(extra or {}),
    }, path)


def load_model(path: Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, the file's metadata); a file that is not ours is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} not found; `digitsearch best --retrain` writes "
                        "results/<name>/final/model.pt")
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise UserError(f"{path} is not a model file digitsearch can read ({type(err).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a digitsearch model file (expected format {FORMAT})")
    model = _rebuild(meta)
    model.load_state_dict(meta["state_dict"])
    model.eval()
    return model, meta


def _rebuild(meta: dict) -> nn.Module:
    """The file's net, weights not loaded yet: one family's, or an ensemble of them (final.ensemble,
    which is no searchable family: models knows nothing of it)."""
    from digitsearch.final import ensemble

    if meta["family"] == ensemble.FAMILY:
        return ensemble.rebuild(meta["model_args"])
    return models.create(meta["family"], **meta["model_args"])


def write_predictions(path: Path, labels: np.ndarray, *, files: list[str] | None = None,
                      probs: np.ndarray | None = None, class_names: list[str] | None = None) -> None:
    """Kaggle's submission format: ImageId from 1, Label (the user's labels: numbers or words);
    `file,Label` when the images came from named files. probs (N, classes): one prob_<class name>
    column each (softmax)."""
    ids = {"file": list(files)} if files is not None else {"ImageId": np.arange(1, len(labels) + 1)}
    table = pd.DataFrame({**ids, "Label": np.asarray(labels)})
    if probs is not None:
        names = class_names if class_names and len(class_names) == probs.shape[1] else range(probs.shape[1])
        for column, name in enumerate(names):
            table[f"prob_{name}"] = probs[:, column]
    table.to_csv(path, index=False)
