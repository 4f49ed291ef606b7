"""best config -> fit on train+val -> test metrics -> artifacts in results/<name>/final/."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from digitsearch import data, engine, experiments, export
from digitsearch.config import TrialConfig
from digitsearch.errors import UserError
from digitsearch.trainable import build_model


def load_bundle(meta: dict) -> data.Bundle:
    """The experiment's data, split exactly as during the search (same spec, seed, fraction)."""
    return data.load(meta["dataset"], test=meta.get("test"), data_dir=meta.get("data_dir"),
                     val_fraction=meta["val_fraction"], seed=meta["seed"])


def test_metrics(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict:
    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    return {
        "test_accuracy": float((labels == predicted).mean()),
        "test_images": int(len(labels)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
    }


def run(folder: Path, epochs: int | None = None, progress: Callable | None = None,
        on_start: Callable[[int], None] | None = None) -> dict:
    """Retrain the best trial's config on all training data; returns metrics.json's content."""
    meta = experiments.read_json(folder / experiments.EXPERIMENT_FILE)
    best = experiments.read_best(folder)
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1 (got {epochs})")
    epochs = epochs or int(best["best_epoch"]) or int(meta["max_epochs"])
    bundle = load_bundle(meta)
    cfg = TrialConfig.from_flat(best["config"], meta["family"])
    torch.manual_seed(meta["seed"])
    device = engine.default_device()
    model = build_model(cfg, bundle).to(device)
    full = bundle.train_and_val()
    mean, std = full.pixel_stats()
    train = engine.to_tensors(full.images, full.labels, mean, std, device)
    if on_start:
        on_start(epochs)
    history = engine.fit(model, train, cfg.train, epochs, seed=meta["seed"], on_epoch=progress)

    out = folder / "final"
    out.mkdir(exist_ok=True)
    model_args = {**cfg.model_args, "num_classes": bundle.num_classes, "image_size": bundle.image_size}
    export.save_model(out / "model.pt", model, family=cfg.family, model_args=model_args, mean=mean, std=std,
                      class_names=bundle.class_names, image_size=bundle.image_size,
                      extra={"config": best["config"], "experiment": folder.name, "epochs": epochs})
    metrics = {"experiment": folder.name, "trial_id": best["trial_id"], "epochs": epochs,
               "train_images": len(full), "val_acc_in_search": best["val_acc"], "history": history}
    if bundle.test is not None and len(bundle.test):
        test = engine.to_tensors(bundle.test.images, None, mean, std, device)
        predicted = engine.predict(model, test.x)
        export.write_predictions(out / "predictions.csv", predicted)
        if bundle.test.labels is not None:
            metrics.update(test_metrics(bundle.test.labels, predicted, bundle.class_names))
            matrix = confusion_matrix(bundle.test.labels, predicted, labels=list(range(bundle.num_classes)))
            pd.DataFrame(matrix, index=bundle.class_names, columns=bundle.class_names).to_csv(
                out / "confusion_matrix.csv", index_label="true\\predicted")
    experiments.write_json(out / "metrics.json", metrics)
    return metrics
