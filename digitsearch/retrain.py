"""best config -> fit on train+val -> test metrics -> artifacts in results/<name>/final/."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from digitsearch import data, engine, experiments, export, export_formats, models, retrain_board, tasks
from digitsearch.config import TrialConfig
from digitsearch.errors import UserError
from digitsearch.trainable import build_model, model_kwargs


def load_bundle(meta: dict) -> data.Bundle:
    """The experiment's data, split exactly as during the search (same spec, seed, fraction)."""
    return data.load(meta["dataset"], test=meta.get("test"), data_dir=meta.get("data_dir"),
                     val_fraction=meta["val_fraction"], seed=meta["seed"], base=meta.get("base"))


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


def _image_outputs(out: Path, bundle: data.Bundle, predicted: np.ndarray) -> dict:
    """Kaggle predictions; with labels, accuracy, per-class scores and the confusion matrix."""
    export.write_predictions(out / "predictions.csv", predicted)
    if bundle.test.labels is None:
        return {}
    matrix = confusion_matrix(bundle.test.labels, predicted, labels=list(range(bundle.num_classes)))
    pd.DataFrame(matrix, index=bundle.class_names, columns=bundle.class_names).to_csv(
        out / "confusion_matrix.csv", index_label="true\\predicted")
    return test_metrics(bundle.test.labels, predicted, bundle.class_names)


def _sequence_outputs(out: Path, bundle: data.Bundle, predicted: np.ndarray) -> dict:
    """Every held-out question with the true and the predicted answer; exact-match accuracy."""
    def text(rows: np.ndarray) -> list[str]:
        return ["".join(bundle.vocab[i] for i in row) for row in rows]

    right = (predicted == bundle.test.labels).all(1)
    pd.DataFrame({"question": text(bundle.test.images), "answer": text(bundle.test.labels),
                  "predicted": text(predicted), "correct": right}).to_csv(out / "predictions.csv", index=False)
    symbol_acc = float((predicted == bundle.test.labels).mean())
    return {"test_accuracy": float(right.mean()), "test_sequences": int(len(right)), "test_symbol_accuracy": symbol_acc}


def output_dir(folder: Path, trial: str | None = None) -> Path:
    """final/ for the best trial; final-<id>/ for another one (e.g. a hand-made starting point
    retrained beside the best for comparison)."""
    return folder / ("final" if trial is None else f"final-{trial}")


def run(folder: Path, epochs: int | None = None, progress: Callable | None = None,
        on_start: Callable[[int], None] | None = None, exports: tuple[str, ...] = (),
        trial: str | None = None) -> dict:
    """Retrain the best trial's config (or `trial`'s) on all training data; returns metrics.json's content.

    exports: extra formats written beside model.pt (export_formats.FILES), checked before training.
    """
    meta = experiments.read_json(folder / experiments.EXPERIMENT_FILE)
    best = experiments.read_trial(folder, trial) if trial else experiments.read_best(folder)
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1 (got {epochs})")
    exports = export_formats.validate(exports)
    export_formats.check_available(exports)
    epochs = epochs or int(best.get("best_epoch") or 0) or int(meta["max_epochs"])
    bundle = load_bundle(meta)
    task = tasks.for_bundle(bundle)
    cfg = TrialConfig.from_flat(best["config"], meta["family"])
    torch.manual_seed(meta["seed"])
    device = engine.default_device()
    full = bundle.train_and_val()
    mean, std = full.pixel_stats() if bundle.task == "image" else (0.0, 1.0)
    try:
        model = engine.prepare_model(build_model(cfg, bundle, mean, std), device)
    except models.InvalidArchitecture as err:  # only a chosen --trial can be one the search found infeasible
        raise UserError(f"trial {best['trial_id']} cannot be built: {err}") from None
    train = engine.to_tensors(full.images, full.labels, mean, std, device, task)
    if on_start:
        on_start(epochs)
    history = engine.fit(model, train, cfg.train, epochs, seed=meta["seed"], on_epoch=progress)

    out = output_dir(folder, trial)
    out.mkdir(exist_ok=True)
    saved_args = model_kwargs(cfg, bundle, mean, std)
    if "init" in saved_args:  # every weight is in the state dict: loading must not need ImageNet or a checkpoint
        saved_args["init"] = "scratch"
    export.save_model(out / "model.pt", model, family=cfg.family, model_args=saved_args,
                      mean=mean, std=std, class_names=bundle.class_names, task=bundle.task,
                      image_size=bundle.image_size if bundle.task == "image" else None, vocab=bundle.vocab,
                      extra={"config": best["config"], "experiment": folder.name, "epochs": epochs})
    export_formats.write(out / "model.pt", exports)  # also removes exports an earlier retrain left
    metrics = {"experiment": folder.name, "trial_id": best["trial_id"], "family": cfg.family, "task": bundle.task,
               "epochs": epochs, "train_examples": len(full), "val_acc_in_search": best["val_acc"],
               "history": history}
    test = predicted = None
    if bundle.test is not None and len(bundle.test):
        test = engine.to_tensors(bundle.test.images, None, mean, std, device, task)
        predicted = engine.predict(model, test)
        write = _sequence_outputs if bundle.task == "sequence" else _image_outputs
        metrics.update(write(out, bundle, predicted))
    experiments.write_json(out / "metrics.json", metrics)
    retrain_board.write(folder, history, run=out.name, model=model, bundle=bundle,
                        test_x=test.x if test is not None else None, predicted=predicted)
    return metrics
