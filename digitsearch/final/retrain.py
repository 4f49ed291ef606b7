"""best config(s) -> fit on train+val -> test metrics -> artifacts in results/<name>/final/.

No Ray anywhere on this path: the models come from core.build, the loop from core.engine.
Every check (options, epochs, export formats, the trials) comes before the data are loaded,
and the data are checked against the fingerprint `tune` recorded before any epoch; the
exports come last, so a failed export never loses the model, metrics or predictions.

One trial gives model.pt of that net, as it always did. `ensemble` > 1 retrains the
leaderboard's top distinct configs near the best (or the best again under other seeds), `tta`
adds test-time views: either way model.pt then holds one final.ensembles.Ensemble, which every
consumer serves as one model. `time_limit_s` picks the epochs (and how many members) so that
the whole run ends in time (core.budget).
What to retrain is final.plan; the training itself final.training; the files are written here.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from digitsearch import data
from digitsearch.core import cost, engine
from digitsearch.core.build import model_kwargs
from digitsearch.core.timebudget import Deadline
from digitsearch.data import fingerprint
from digitsearch.errors import UserError
from digitsearch.final import ensemble as ensembles  # `ensemble` is run()'s count of members
from digitsearch.final import evaluation, export, formats, options
from digitsearch.final.plan import Member, Plan, plan
from digitsearch.final.training import TrainData, Trained, fit_to, train_members, training_data
from digitsearch.store import experiments
from digitsearch.store.layout import METRICS_FILE, MODEL_FILE
from digitsearch.viz import retrain_board


def load_bundle(meta: dict) -> data.Bundle:
    """The experiment's data, split exactly as during the search (same spec, seed, fraction)."""
    return data.load(meta["dataset"], test=meta.get("test"), data_dir=meta.get("data_dir"),
                     val_fraction=meta["val_fraction"], seed=meta["seed"], base=meta.get("base"))


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
        note: Callable[[str], None] = print, *, ensemble: int = 1, tta: bool = False,
        time_limit_s: float | None = None, on_member: Callable[[int, int, str], None] | None = None) -> dict:
    """Retrain the best trial's config (or `trial`'s) on all training data; returns metrics.json's content.

    exports: extra formats written beside model.pt (formats.FILES), checked before training.
    accept_changed_data: retrain even when the data differ from the search's (`note` gets the warning).
    ensemble: average the top K distinct configs; tta: average each over test-time views.
    time_limit_s: the whole run's seconds, from this call on; epochs (and members) are picked to fit.
    on_member(k, count, trial_id) before member k (from 1) trains; on_start(epochs), progress(epoch, metrics).
    """
    deadline = Deadline.after(time_limit_s) if time_limit_s is not None else None  # loading the data counts
    job = plan(folder, epochs, exports, trial, ensemble=ensemble, tta=tta, time_limit_s=time_limit_s, note=note)
    bundle = load_bundle(job.meta)
    options.check_task(bundle.task, len(job.members), tta)  # experiments older than experiment.json's task
    identity = check_data(job.meta, bundle, accept_changed_data, note)
    training = training_data(bundle)
    guard = None
    if deadline is not None:
        # the tests' cost is planned for every view the data allow: the members that end up trained
        # may allow more views than those asked for (below)
        job, guard = fit_to(deadline, job, bundle, training, ensemble_views(bundle, tta), note)
    trained = train_members(job, bundle, training, guard, note, progress, on_start, on_member)
    # the guard may have left the last members out, or stopped one early: the files say what was trained
    job = replace(job, members=tuple(replace(m, epochs=len(t.history), reseed=t.reseed)
                                     for m, t in zip(job.members, trained)))
    # after the plan and the guard: a member without flips that was left out no longer rules out
    # mirrored views (fashion-60m-d's one flipping net was tested without them)
    views = ensemble_views(bundle, tta, job.members)
    job.out.mkdir(exist_ok=True)
    served = trained[0].model if job.plain else ensembles.Ensemble([t.model for t in trained], views)
    _save_model(job, bundle, training, served, views)
    metrics, test_x, predicted = _test(job, bundle, training, trained, served, views)
    metrics.update(identity, served_cost=served_cost(served, training.tensors.x[:1], job.out / MODEL_FILE))
    experiments.write_json(job.out / METRICS_FILE, metrics)
    retrain_board.write(folder, trained[0].history, run=job.out.name, model=trained[0].model, bundle=bundle,
                        test_x=test_x, predicted=predicted)
    try:
        formats.write(job.out / MODEL_FILE, job.exports)  # also removes exports an earlier retrain left
    except UserError as err:
        raise UserError(f"{err}; the retrained model.pt, metrics.json and predictions are kept in {job.out}") from None
    return metrics


def served_cost(served: torch.nn.Module, example: torch.Tensor, model_file: Path) -> dict:
    """What the model.pt just written costs to serve (an ensemble: every member on every test-time
    view), measured as a trial's latency is (core.cost), with model.pt's own size on disk. No
    batch-256 throughput: for an ensemble with TTA each run takes seconds, out of a time limit."""
    measured = cost.measure(served, example, throughput=False).metrics()
    measured.pop("images_per_s")
    return {**measured, "model_kb": round(model_file.stat().st_size / 1024, 1)}


def ensemble_views(bundle: data.Bundle, tta: bool, members: tuple[Member, ...] | None = None) -> tuple[str, ...]:
    """The test-time views of `members` (None: of nets that all trained with flips).
    Mirrored views only for nets that saw mirrored images in training: Fashion-MNIST's shoes all
    point left, so a net trained without flips meets a mirrored shoe as something new."""
    mirrored = bundle.mirror_safe and (members is None or all(m.cfg.train.flip for m in members))
    return ensembles.tta_views(mirrored) if tta else ensembles.IDENTITY


def _saved_args(member: Member, bundle: data.Bundle, training: TrainData) -> dict:
    saved = model_kwargs(member.cfg, bundle, training.mean, training.std)
    if "init" in saved:  # every weight is in the state dict: loading must not need ImageNet or a checkpoint
        saved["init"] = "scratch"
    return saved


def _save_model(job: Plan, bundle: data.Bundle, training: TrainData, served: torch.nn.Module,
                views: tuple[str, ...]) -> None:
    args = [_saved_args(member, bundle, training) for member in job.members]
    extra = {"config": job.trial["config"], "experiment": job.folder.name, "epochs": job.epochs}
    family, model_args = job.cfg.family, args[0]
    if not job.plain:
        family = ensembles.FAMILY
        model_args = ensembles.model_args([(m.cfg.family, a) for m, a in zip(job.members, args)], views)
        extra.update(tta=list(views), members=[{"trial_id": m.trial["trial_id"], "family": m.cfg.family,
                                                "epochs": m.epochs, "seed": job.meta["seed"] + m.reseed,
                                                "config": m.trial["config"]} for m in job.members])
    export.save_model(job.out / MODEL_FILE, served, family=family, model_args=model_args, mean=training.mean,
                      std=training.std, class_names=bundle.class_names, labels=bundle.user_labels, task=bundle.task,
                      image_size=bundle.image_size if bundle.task == "image" else None, vocab=bundle.vocab, extra=extra)


def _described(job: Plan, bundle: data.Bundle, trained: list[Trained], views: tuple[str, ...]) -> dict:
    """metrics.json before the test: what was trained, on what; each member's own history when several."""
    several = len(job.members) > 1
    members = [{"trial_id": m.trial["trial_id"], "family": m.cfg.family, "epochs": m.epochs,
                "seed": job.meta["seed"] + m.reseed, "val_acc_in_search": m.trial["val_acc"],
                **_checked(t), **({"history": t.history} if several else {})}
               for m, t in zip(job.members, trained)]
    metrics = {"experiment": job.folder.name, "trial_id": job.trial["trial_id"],
               "family": ensembles.FAMILY if several else job.cfg.family, "task": bundle.task,
               "epochs": max(m.epochs for m in job.members), "train_examples": len(bundle.train) + len(bundle.val),
               "val_acc_in_search": job.trial["val_acc"], "members": members, "tta": list(views)}
    if not several:
        metrics["history"] = trained[0].history
    return metrics


def _checked(trained: Trained) -> dict:
    """The retrain check's figure (final.check): accuracy on the validation images it trained on."""
    if trained.check is None:
        return {}
    return {"val_acc_after_retrain": trained.check.seen, "short_of_search": trained.check.short}


def _test(job: Plan, bundle: data.Bundle, training: TrainData, trained: list[Trained], served: torch.nn.Module,
          views: tuple[str, ...]):
    """(metrics.json's content, the test inputs, the predictions); the last two None without a test split."""
    metrics = _described(job, bundle, trained, views)
    if bundle.test is None or not len(bundle.test):
        return metrics, None, None
    test = engine.to_tensors(bundle.test.images, None, training.mean, training.std, training.device, training.task)
    if job.plain:
        predicted = engine.predict(served, test)
        metrics.update(evaluation.outputs(job.out, bundle, predicted))
        if "test_accuracy" in metrics:
            metrics["members"][0]["test_accuracy"] = metrics["test_accuracy"]
        return metrics, test.x, predicted
    # every member on every view once; the ensemble's, the plain images' and each member's predictions from them
    found = {k: v.numpy() for k, v in ensembles.combine(ensembles.log_probs(served, test.x)).items()}
    metrics.update(evaluation.outputs(job.out, bundle, found["served"]))
    labels = bundle.test.labels
    if labels is not None:
        if job.tta:
            metrics["test_accuracy_no_tta"] = _accuracy(found["no_tta"], labels)
        for entry, predicted in zip(metrics["members"], found["members"]):
            entry["test_accuracy"] = _accuracy(predicted, labels)
    return metrics, test.x, found["served"]


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float((predicted == labels).mean())
