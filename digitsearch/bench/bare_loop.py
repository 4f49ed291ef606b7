"""The bare loop a user would write instead of digitsearch: Optuna + plain PyTorch, no Ray.

It trains the configs a search tried, each for the epochs that trial trained, with the same
concurrency (Optuna's n_jobs threads, torch threads per trial as the search's --cpus-per-trial),
on the same data: the time digitsearch's search is compared with (`make demo`'s search <= 1.5x).
Run as `python -m digitsearch.bench.bare_loop SPEC.json` so that its wall time, like the
search's, includes its imports and its data loading.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def spec_of(folder: Path) -> dict:
    """What a finished search trained: each trained trial's config and epochs, its dataset,
    concurrency and torch threads (from experiment.json, Tune's params.json, the leaderboard)."""
    import pandas as pd

    from digitsearch.store.trials import trial_dirs

    meta = json.loads((folder / "experiment.json").read_text())
    table = pd.read_csv(folder / "leaderboard.csv")
    dirs = trial_dirs(folder)
    trials = [{"config": json.loads((dirs[row.trial_id] / "params.json").read_text()), "epochs": int(row.epochs)}
              for row in table.itertuples() if row.epochs > 0 and row.trial_id in dirs]
    threads = max(1, int(meta["cpus_per_trial"]))
    slots = meta["max_concurrent"] or max(1, (os.cpu_count() or 1) // threads)  # as the search filled its CPUs
    return {"dataset": meta["dataset"], "family": meta["family"], "seed": meta["seed"], "trials": trials,
            "threads": threads, "concurrency": min(slots, len(trials))}


def run(spec: dict) -> float:
    """Train every trial of `spec` as an Optuna study would; the best val_acc."""
    import optuna
    import torch

    from digitsearch import data
    from digitsearch.core import engine, tasks
    from digitsearch.core.build import build_model
    from digitsearch.core.config import TrialConfig

    torch.set_num_threads(spec["threads"])
    bundle = data.load(spec["dataset"], seed=spec["seed"])
    mean, std = bundle.normalisation()
    task = tasks.for_bundle(bundle)
    train = engine.to_tensors(bundle.train.images, bundle.train.labels, mean, std, "cpu", task)
    val = engine.to_tensors(bundle.val.images, bundle.val.labels, mean, std, "cpu", task)

    def objective(trial: optuna.Trial) -> float:
        planned = spec["trials"][trial.number]
        cfg = TrialConfig.from_flat(planned["config"], spec["family"])
        model = engine.prepare_model(build_model(cfg, bundle, mean, std), torch.device("cpu"))
        optimizer = engine.make_optimizer(model, cfg.train)
        scheduler = engine.make_scheduler(optimizer, cfg.train, planned["epochs"], len(train))
        generator = torch.Generator().manual_seed(spec["seed"])
        best = 0.0
        for epoch in range(1, planned["epochs"] + 1):
            engine.train_epoch(model, optimizer, train, cfg.train, generator, scheduler)
            best = max(best, engine.evaluate(model, val)["val_acc"])
            trial.report(best, epoch)
        return best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=len(spec["trials"]), n_jobs=spec["concurrency"])
    return study.best_value


if __name__ == "__main__":
    began = time.perf_counter()
    best = run(json.loads(Path(sys.argv[1]).read_text()))
    print(json.dumps({"best_val_acc": best, "seconds": time.perf_counter() - began}))
