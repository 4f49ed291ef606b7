"""best config -> fit on train+val -> test metrics -> artifacts in results/<name>/final/.

No Ray anywhere on this path: the model comes from core.build, the loop from core.engine.
Every check (epochs, export formats, the trial) comes before the data are loaded, and the
data are checked against the fingerprint `tune` recorded before any epoch; the exports come
last, so a failed export never loses the model, metrics or predictions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from digitsearch import data, models
from digitsearch.core import engine, tasks
from digitsearch.core.build import build_model, model_kwargs
from digitsearch.core.config import TrialConfig
from digitsearch.data import fingerprint
from digitsearch.errors import UserError
from digitsearch.final import evaluation, export, formats
from digitsearch.store import experiments
from digitsearch.store.layout import METRICS_FILE, MODEL_FILE, final_dir
from digitsearch.store.leaderboard import TRAINED_STATUSES
from digitsearch.store.trials import read_trial
from digitsearch.viz import retrain_board


@dataclass(frozen=True)
class Plan:
    """What a retrain will do, fixed before any data are loaded."""

    folder: Path
    meta: dict
    trial: dict  # best.json, or the chosen trial's row and config
    cfg: TrialConfig
    epochs: int
    exports: tuple[str, ...]
    out: Path


@dataclass
class Trained:
    model: torch.nn.Module
    history: list[dict]
    mean: float
    std: float
    task: tasks.ImageTask | tasks.SequenceTask


def load_bundle(meta: dict) -> data.Bundle:
    """The experiment's data, split exactly as during the search (same spec, seed, fraction)."""
    return data.load(meta["dataset"], test=meta.get("test"), data_dir=meta.get("data_dir"),
                     val_fraction=meta["val_fraction"], seed=meta["seed"], base=meta.get("base"))


def plan(folder: Path, epochs: int | None = None, exports: tuple[str, ...] = (), trial: str | None = None) -> Plan:
    meta = experiments.read_meta(folder)
    chosen = read_trial(folder, trial) if trial else experiments.read_best(folder)
    if chosen.get("status") not in (*TRAINED_STATUSES, None):  # best.json holds only trained trials
        why = f": {chosen['note']}" if chosen.get("note") else ""
        raise UserError(f"trial {chosen['trial_id']} ended as {chosen['status']}{why}; it has no trained epoch to "
                        f"retrain (`digitsearch best` names the best trial that has)")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1 (got {epochs})")
    exports = formats.validate(exports)
    formats.check_available(exports)
    epochs = epochs or int(chosen.get("best_epoch") or 0) or int(meta["max_epochs"])
    cfg = TrialConfig.from_flat(chosen["config"], meta["family"])
    return Plan(folder, meta, chosen, cfg, epochs, exports, final_dir(folder, trial))


def check_data(meta: dict, bundle: data.Bundle, accept_changed: bool = False,
               note: Callable[[str], None] = print) -> dict:
    """The data loaded now against the fingerprint `tune` recorded: changed data are a
    UserError naming what changed, or with `accept_changed` a warning. Returns what metrics.json
    records: the fingerprint of the data retrained on, and what changed since the search."""
    now = fingerprint.of(bundle)
    recorded = meta.get("data_fingerprint")
    if recorded is None:
        note("note: this experiment recorded no data fingerprint (made before they were); "
             "retraining without checking that the data are the search's")
        return {"data_fingerprint": now}
    changed = fingerprint.changes(recorded, now)
    if changed and not accept_changed:
        raise UserError(f"the data of experiment {meta['name']!r} ({meta['dataset']}) are not those its search saw: "
                        f"{'; '.join(changed)}; pass --accept-changed-data to retrain on them anyway")
    if changed:
        note(f"warning: retraining on changed data ({'; '.join(changed)}); the search's val_acc "
             f"was measured on other data")
        return {"data_fingerprint": now, "data_changed": changed}
    return {"data_fingerprint": now}


def run(folder: Path, epochs: int | None = None, progress: Callable | None = None,
        on_start: Callable[[int], None] | None = None, exports: tuple[str, ...] = (),
        trial: str | None = None, accept_changed_data: bool = False,
        note: Callable[[str], None] = print) -> dict:
    """Retrain the best trial's config (or `trial`'s) on all training data; returns metrics.json's content.

    exports: extra formats written beside model.pt (formats.FILES), checked before training.
    accept_changed_data: retrain even when the data differ from the search's (`note` gets the warning).
    """
    job = plan(folder, epochs, exports, trial)
    bundle = load_bundle(job.meta)
    identity = check_data(job.meta, bundle, accept_changed_data, note)
    trained = train(job, bundle, progress, on_start)
    job.out.mkdir(exist_ok=True)
    _save_model(job, bundle, trained)
    metrics, test_x, predicted = _test(job, bundle, trained)
    metrics.update(identity)
    experiments.write_json(job.out / METRICS_FILE, metrics)
    retrain_board.write(folder, trained.history, run=job.out.name, model=trained.model, bundle=bundle,
                        test_x=test_x, predicted=predicted)
    try:
        formats.write(job.out / MODEL_FILE, job.exports)  # also removes exports an earlier retrain left
    except UserError as err:
        raise UserError(f"{err}; the retrained model.pt, metrics.json and predictions are kept in {job.out}") from None
    return metrics


def train(job: Plan, bundle: data.Bundle, progress: Callable | None = None,
          on_start: Callable[[int], None] | None = None) -> Trained:
    task = tasks.for_bundle(bundle)
    torch.manual_seed(job.meta["seed"])
    device = engine.default_device()
    full = bundle.train_and_val()
    mean, std = full.pixel_stats() if bundle.task == "image" else (0.0, 1.0)
    try:
        model = engine.prepare_model(build_model(job.cfg, bundle, mean, std), device)
    except models.InvalidArchitecture as err:  # only a chosen --trial can be one the search found infeasible
        raise UserError(f"trial {job.trial['trial_id']} cannot be built: {err}") from None
    train_set = engine.to_tensors(full.images, full.labels, mean, std, device, task)
    if on_start:
        on_start(job.epochs)
    history = engine.fit(model, train_set, job.cfg.train, job.epochs, seed=job.meta["seed"], on_epoch=progress)
    return Trained(model, history, mean, std, task)


def _save_model(job: Plan, bundle: data.Bundle, trained: Trained) -> None:
    saved_args = model_kwargs(job.cfg, bundle, trained.mean, trained.std)
    if "init" in saved_args:  # every weight is in the state dict: loading must not need ImageNet or a checkpoint
        saved_args["init"] = "scratch"
    export.save_model(job.out / MODEL_FILE, trained.model, family=job.cfg.family, model_args=saved_args,
                      mean=trained.mean, std=trained.std, class_names=bundle.class_names, task=bundle.task,
                      image_size=bundle.image_size if bundle.task == "image" else None, vocab=bundle.vocab,
                      extra={"config": job.trial["config"], "experiment": job.folder.name, "epochs": job.epochs})


def _test(job: Plan, bundle: data.Bundle, trained: Trained):
    """(metrics.json's content, the test inputs, the predictions); the last two None without a test split."""
    metrics = {"experiment": job.folder.name, "trial_id": job.trial["trial_id"], "family": job.cfg.family,
               "task": bundle.task, "epochs": job.epochs, "train_examples": len(bundle.train) + len(bundle.val),
               "val_acc_in_search": job.trial["val_acc"], "history": trained.history}
    if bundle.test is None or not len(bundle.test):
        return metrics, None, None
    device = next(trained.model.parameters()).device
    test = engine.to_tensors(bundle.test.images, None, trained.mean, trained.std, device, trained.task)
    predicted = engine.predict(trained.model, test)
    metrics.update(evaluation.outputs(job.out, bundle, predicted))
    return metrics, test.x, predicted
