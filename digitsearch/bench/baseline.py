"""`digitsearch bench --baseline 30m --dataset D`: the obvious alternative to a search, measured.

One strong net written by hand, trained with the same augmentation and schedule for the whole
wall time, no search: what a user gets by training the cnn space's recipe net (its first
starting point: two batch-normed 3x3 convs a stage, one-cycle, label smoothing, shifts) on
train+val for as many epochs as fit. `tune --time-limit T --retrain` has to beat this at the
same T; results/README.md puts the two side by side.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from digitsearch import data, spaces
from digitsearch.core import budget, engine
from digitsearch.core.build import build_model
from digitsearch.core.config import TrialConfig
from digitsearch.core.timebudget import Deadline, shown
from digitsearch.errors import UserError

RECIPE_SPACE = "cnn"
FOR_THE_TEST_S = 2.0  # kept back for testing the net and writing the result


def recipe() -> dict:
    """The recipe net's full config: the cnn space's first starting point (one source: the YAML)."""
    point = dict(spaces.load(RECIPE_SPACE).starting_points[0])
    if point.get("cnn.convs") != 2 or point.get("schedule") != "onecycle":
        raise UserError(f"the {RECIPE_SPACE} space's first starting point is no longer the recipe net "
                        "(two convs a block, one-cycle); update bench/baseline.py")
    return point


def run(dataset: str, seconds: float, out: Path, seed: int = 0, echo: Callable[[str], None] = print,
        overrides: dict | None = None) -> dict:
    """Train the recipe for `seconds` of wall time (from now, data loading included); test it.
    `overrides` (--set): settings of the recipe changed, to measure what a change is worth."""
    began = time.perf_counter()
    deadline = Deadline.after(seconds)
    bundle = data.load(dataset, seed=seed)
    if bundle.task != "image" or bundle.test is None or bundle.test.labels is None:
        raise UserError(f"--baseline needs labelled image data with a test split; {dataset} has none")
    point = {**recipe(), "flip": bundle.mirror_safe, **(overrides or {})}  # flip as a search sets it (preflight)
    cfg = TrialConfig.from_flat(point, RECIPE_SPACE)
    full = bundle.train_and_val()
    mean, std = full.pixel_stats()
    train = engine.to_tensors(full.images, full.labels, mean, std)
    test = engine.to_tensors(bundle.test.images, bundle.test.labels, mean, std)
    torch.manual_seed(seed)
    device = torch.device("cpu")

    def net() -> torch.nn.Module:  # laid out as the search and the retrain lay theirs (engine.prepare_model)
        return engine.prepare_model(build_model(cfg, bundle, mean, std), device)

    cost = budget.measure(net, train, cfg.train, len(test), views=1, seed=seed,
                          seconds=budget.calibration_seconds(deadline.left()))
    plan = budget.plan_epochs([cost], deadline.left(), fixed=FOR_THE_TEST_S)
    echo(f"baseline: the {RECIPE_SPACE} recipe net on {len(train)} images for {plan.epochs} epochs "
         f"(about {shown(plan.seconds)} of {shown(seconds)})")
    torch.manual_seed(seed)
    model = net()

    def progress(epoch: int, metrics: dict) -> None:
        echo(f"  epoch {epoch}/{plan.epochs}: loss {metrics['train_loss']:.4f}, {metrics['epoch_seconds']:.1f} s")

    def out_of_time(epoch: int, metrics: dict) -> bool:
        # a machine slower than calibrated (another process beside it) must not run past the limit
        if metrics["epoch_seconds"] <= deadline.left() - FOR_THE_TEST_S:
            return False
        echo(f"baseline: stopped after epoch {epoch} of {plan.epochs}: the next would end after the limit")
        return True

    trained = engine.fit(model, train, cfg.train, plan.epochs, seed=seed, on_epoch=progress, stop=out_of_time)
    accuracy = float((engine.predict(model, test) == bundle.test.labels).mean())
    result = {"dataset": dataset, "dataset_name": bundle.name, "time_limit_s": seconds, "epochs": len(trained),
              "planned_epochs": plan.epochs,
              "train_examples": len(train), "test_images": len(test), "test_accuracy": accuracy,
              "wall_s": round(time.perf_counter() - began, 1), "config": point,
              "date": time.strftime("%Y-%m-%d %H:%M")}
    out.mkdir(parents=True, exist_ok=True)
    changed = "".join(f"-{key}={value}" for key, value in (overrides or {}).items())
    path = out / f"baseline-{bundle.name}-{shown(seconds)}{changed}-seed{seed}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    echo(f"baseline: test accuracy {accuracy:.4f} on {len(test)} images in {result['wall_s']} s -> {path}")
    return result
