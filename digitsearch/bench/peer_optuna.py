"""The peer a search must beat: a plain Optuna script as a competent user writes it in an hour.

TPE + median pruning over a small batch-normed CNN space (width, depth, dropout, dense, lr,
batch, weight decay), 6-epoch one-cycle trials for 60 % of the time, then the best config
retrained on train+val with one-cycle for as many epochs as the rest of the time holds, and
tested once. It uses what the product uses where a user would copy it: the same data split
(data.load), shift augmentation (core.augment), bf16 autocast on a CPU that has it
(core.engine.autocast); the model, the loops and the time keeping are its own, plain PyTorch.

Run as `python -m digitsearch.bench.peer_optuna DATASET SECONDS SEED OUT.json`, so its wall time,
like the command it is compared with, includes Python's start, the imports and the data loading.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SEARCH_SHARE = 0.6
TRIAL_EPOCHS = 6
KEPT_FOR_TEST_S = 5.0


def build(trial, channels: int, size: tuple[int, int], classes: int):
    from torch import nn

    depth = trial.suggest_int("depth", 2, 3)
    width = trial.suggest_categorical("width", [16, 32, 48, 64])
    dense = trial.suggest_categorical("dense", [64, 128, 256])
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    layers, before = [], channels
    for block in range(depth):
        after = width * 2 ** block
        for conv_in in (before, after):
            layers += [nn.Conv2d(conv_in, after, 3, padding=1, bias=False), nn.BatchNorm2d(after), nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
        before = after
    flat = before * (size[0] >> depth) * (size[1] >> depth)
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, dense), nn.ReLU(), nn.Dropout(dropout),
               nn.Linear(dense, classes)]
    return nn.Sequential(*layers)


def train(model, x, y, params: dict, epochs: int, seed: int, after_epoch=None) -> None:
    """AdamW with a one-cycle schedule over `epochs`, label smoothing, 2-px shifts, bf16 autocast."""
    import torch
    from torch import nn

    from digitsearch.core import augment, engine

    batch = params["batch"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    steps = -(-len(x) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, params["lr"], total_steps=epochs * steps)
    loss_of = nn.CrossEntropyLoss(label_smoothing=0.1)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            pick = order[start:start + batch]
            with engine.autocast(torch.device("cpu"), training=True):
                loss = loss_of(model(augment.shift(x[pick], generator)), y[pick])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if after_epoch is not None:
            after_epoch(epoch)


def accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        guesses = torch.cat([model(x[i:i + 1024]).argmax(1) for i in range(0, len(x), 1024)])
    return float((guesses == y).float().mean())


def _score(trial) -> float:
    """A finished trial's value, else (pruned) the best epoch it reported."""
    return trial.value if trial.value is not None else max(trial.intermediate_values.values())


def _best(study):
    """The best complete trial, else the best pruned one: under a short limit none may finish."""
    reported = [t for t in study.trials if t.value is not None or t.intermediate_values]
    if not reported:
        raise RuntimeError("no trial finished an epoch in the search's share of the time")
    complete = [t for t in reported if t.value is not None]
    return max(complete or reported, key=_score)


def run(dataset: str, seconds: float, seed: int, started: float) -> dict:
    import optuna
    import torch

    from digitsearch import data
    from digitsearch.core import engine

    torch.manual_seed(seed)
    bundle = data.load(dataset, seed=seed)
    mean, std = bundle.normalisation()

    def tensors(split):
        images = torch.as_tensor(split.images, dtype=torch.float32).unsqueeze(1) / 255.0
        return (images - mean) / std, torch.as_tensor(split.labels, dtype=torch.long)

    (x, y), (vx, vy), (tx, ty) = tensors(bundle.train), tensors(bundle.val), tensors(bundle.test)
    shape = (1, tuple(x.shape[2:]), bundle.num_classes)
    search_ends, ends = started + SEARCH_SHARE * seconds, started + seconds
    epoch_cost: dict[int, float] = {}

    def objective(trial) -> float:
        model = engine.prepare_model(build(trial, *shape), torch.device("cpu"))
        params = {"lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
                  "batch": trial.suggest_categorical("batch", [64, 128, 256]),
                  "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)}
        began = time.time()

        def report(epoch: int) -> None:
            epoch_cost[trial.number] = (time.time() - began) / epoch
            trial.report(accuracy(model, vx, vy), epoch)
            if trial.should_prune() or time.time() + epoch_cost[trial.number] > search_ends:
                raise optuna.TrialPruned()

        train(model, x, y, params, TRIAL_EPOCHS, seed + trial.number, report)
        return accuracy(model, vx, vy)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    study.optimize(objective, timeout=max(1.0, search_ends - time.time()), catch=(RuntimeError,))
    best = _best(study)
    fx, fy = torch.cat([x, vx]), torch.cat([y, vy])
    per_epoch = epoch_cost[best.number] * len(fx) / len(x)
    epochs = max(1, int((ends - KEPT_FOR_TEST_S - time.time()) // per_epoch))
    model = engine.prepare_model(build(optuna.trial.FixedTrial(best.params), *shape), torch.device("cpu"))
    train(model, fx, fy, best.params, epochs, seed)
    return {"test_accuracy": accuracy(model, tx, ty), "test_images": len(tx), "trials": len(study.trials),
            "best_val_acc": _score(best), "best_params": best.params, "final_epochs": epochs}


if __name__ == "__main__":
    began = time.time()
    dataset, seconds, seed, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    import psutil

    started = psutil.Process().create_time()  # the user pressed enter then: Python's start counts
    result = run(dataset, seconds, seed, started)
    result["wall_s"] = round(time.time() - started, 1)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
