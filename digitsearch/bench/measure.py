"""The bench's measurements that run searches: trial efficiency against a bare PyTorch loop,
search overhead and the fixed cost per trial, `make demo`'s search against a bare Optuna +
PyTorch loop, and ASHA+TPE against FIFO+random. Every search is a
real `digitsearch tune` process, as a user runs it."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from digitsearch import spaces
from digitsearch.bench import bare_loop, startup
from digitsearch.bench.plan import Plan
from digitsearch.store.trials import trial_dirs


def keras_convnet() -> dict:
    """The cnn space's Keras "simple MNIST convnet" starting point (34,826 parameters): two blocks,
    dropout 0.5 (found by its values: the recipe net went first in the list)."""
    return dict(next(point for point in spaces.load("cnn").starting_points
                     if point.get("cnn.depth") == 2 and point.get("cnn.dropout") == 0.5))


def fixed_space(folder: Path, config: dict) -> Path:
    """A space whose every parameter is a constant: all its trials train the same net."""
    path = folder / "keras_convnet.yaml"
    path.write_text(yaml.safe_dump({"family": "cnn", "description": "the Keras simple MNIST convnet, fixed",
                                    "params": config}, sort_keys=False))
    return path


def bare_images_per_second(dataset: str, config: dict, threads: int, epochs: int) -> float:
    """Median images/s of epochs 2.. of the same net in a plain PyTorch loop, no Ray."""
    import torch

    from digitsearch import data
    from digitsearch.core import engine, tasks
    from digitsearch.core.build import build_model
    from digitsearch.core.config import TrialConfig

    torch.set_num_threads(threads)
    bundle = data.load(dataset, seed=0)
    cfg = TrialConfig.from_flat(config, "cnn")
    mean, std = bundle.normalisation()
    torch.manual_seed(0)
    model = engine.prepare_model(build_model(cfg, bundle, mean, std), torch.device("cpu"))  # as a trial lays it out
    train = engine.to_tensors(bundle.train.images, bundle.train.labels, mean, std, "cpu", tasks.for_bundle(bundle))
    optimizer = engine.make_optimizer(model, cfg.train)
    generator = torch.Generator().manual_seed(0)
    speeds = [engine.train_epoch(model, optimizer, train, cfg.train, generator)["images_per_second"]
              for _ in range(epochs)]
    return statistics.median(speeds[1:])


def tune_process(results: Path, name: str, echo, trial_lines: bool = False, **options) -> tuple[Path, float]:
    """A real `digitsearch tune` process, as a user runs it; returns the experiment folder and
    the wall time from its "search:" line (Ray up, data loaded) to its "best:" line (the
    leaderboard written; Ray's shutdown after it is not the search's). `trial_lines`: echo the
    search's line per finished trial (its progress, for runs of minutes).
    (A search run inside the bench's own process measured its 2-thread trial a quarter slower.)"""
    command = [sys.executable, "-m", "digitsearch.cli", "tune", "--results", str(results), "--name", name,
               "--seed", "0"]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    # the Ray the environment gives (a kept-up one where `ray up` ran): timed from "search:" on,
    # these measures leave Ray's start-up out; the start-up and the demo start Rays of their own
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    began, ended, lines = None, None, []
    for line in proc.stdout:
        lines.append(line)
        if trial_lines and line.startswith("["):
            echo("  " + line.split(" | ")[0].rstrip())  # "[3] 1a2b3c4d: val_acc 0.9875 after 15 epochs"
        if began is None and line.startswith("search:"):
            began = time.perf_counter()
        if line.startswith("best:"):
            ended = time.perf_counter()
    if proc.wait() != 0 or began is None or ended is None:
        raise RuntimeError(f"the bench's search {name!r} failed:\n" + "".join(lines[-20:]))
    return results / name, ended - began


def trial_images_per_second(results: Path, space: Path, dataset: str, threads: int, epochs: int, echo) -> float:
    import pandas as pd

    folder, _ = tune_process(results, f"efficiency-{threads}", echo, space=str(space), dataset=dataset, trials=1,
                        max_epochs=epochs, scheduler="fifo", cpus_per_trial=threads, max_concurrent=1)
    trial = next(iter(trial_dirs(folder).values()))
    progress = pd.read_csv(trial / "progress.csv")
    return float(progress["images_per_second"].iloc[1:].median())


def efficiency(results: Path, plan: Plan, echo) -> list[dict]:
    config = keras_convnet()
    space = fixed_space(results, config)
    rows = []
    for threads in plan.threads:
        bare = bare_images_per_second(plan.dataset, config, threads, plan.epochs)
        trial = trial_images_per_second(results, space, plan.dataset, threads, plan.epochs, echo)
        rows.append({"threads": threads, "bare_images_per_s": round(bare), "trial_images_per_s": round(trial),
                     "ratio": round(trial / bare, 3)})
        echo(f"efficiency, {threads} thread(s): bare {bare:.0f} images/s, in a trial {trial:.0f} ({trial / bare:.2f})")
    return rows


def overhead(results: Path, plan: Plan, echo) -> dict:
    """One search of the fixed Keras net: its wall time against its trials' own time / concurrency,
    and the fixed cost per trial: the median gap between a trial's last result and the start of
    the next trial on its slot (Tune's bookkeeping, the searcher's next config, the actor's reset),
    from the trials' own clocks (started_at, ended_at); a gap is never negative, and with no
    trial after the first on a slot the cost is not measurable (None)."""
    import pandas as pd

    space = fixed_space(results, keras_convnet())
    trials = plan.overhead_trials
    folder, wall = tune_process(results, f"overhead-{trials}", echo, space=str(space), dataset=plan.dataset,
                                trials=trials, max_epochs=2, scheduler="fifo", cpus_per_trial=1)
    own = float(pd.read_csv(folder / "leaderboard.csv")["seconds"].sum())
    slots = min(trials, os.cpu_count() or 1)
    gaps = handover_gaps(folder, slots)
    per_trial = statistics.median(gaps) if gaps else None
    shown = f"{per_trial:.2f} s fixed cost per trial (median of {len(gaps)} handovers)" if gaps else \
        "fixed cost per trial not measurable (no trial followed another on its slot)"
    echo(f"overhead: {trials} trials, {slots} at a time: wall {wall:.1f} s vs trials' own {own:.1f} s / {slots} "
         f"= {own / slots:.1f} s ({wall * slots / own:.2f}); {shown}")
    return {"trials": trials, "concurrency": slots, "wall_s": round(wall, 2), "trials_own_s": round(own, 2),
            "ratio": round(wall * slots / own, 3),
            "fixed_cost_per_trial_s": round(per_trial, 3) if per_trial is not None else None,
            "handovers": len(gaps), "handover_gaps_s": [round(gap, 3) for gap in gaps]}


def handover_gaps(folder: Path, slots: int) -> list[float]:
    """Seconds each slot stood idle between two trials: the trials in the order they started, each
    on the slot freed last before it began (the first `slots` trials open the slots)."""
    import pandas as pd

    spans = []
    for trial in trial_dirs(folder).values():
        progress = pd.read_csv(trial / "progress.csv") if (trial / "progress.csv").is_file() else pd.DataFrame()
        if {"started_at", "ended_at"} <= set(progress.columns) and progress["ended_at"].notna().any():
            spans.append((float(progress["started_at"].iloc[0]), float(progress["ended_at"].max())))
    spans.sort()
    ends, gaps = [end for _, end in spans[:slots]], []
    for start, end in spans[slots:]:
        freed = [e for e in ends if e <= start]
        slot_end = max(freed) if freed else min(ends)  # started a hair before its slot's last result: gap 0
        gaps.append(max(0.0, start - slot_end))
        ends[ends.index(slot_end)] = end
    return gaps


def demo_ratio(results: Path, plan: Plan, echo) -> dict:
    """`make demo`'s search (`tune --space cnn` on the digits) against the bare Optuna + PyTorch loop
    (bench.bare_loop) training the same configs for the same epochs at the same concurrency;
    both timed as whole commands, start to exit."""
    options = [] if plan.demo_trials is None else ["--trials", str(plan.demo_trials), "--max-epochs",
                                                   str(plan.demo_epochs)]
    command = [sys.executable, "-m", "digitsearch.cli", "tune", "--space", "cnn", "--dataset", "digits",
               "--results", str(results), "--name", "demo", "--seed", "0", *options]
    search_s = _timed(command, "the demo search")
    spec = bare_loop.spec_of(results / "demo")
    path = results / "demo-bare-loop.json"
    path.write_text(json.dumps(spec))
    bare_s = _timed([sys.executable, "-m", "digitsearch.bench.bare_loop", str(path)], "the bare loop")
    epochs = sum(trial["epochs"] for trial in spec["trials"])
    echo(f"demo: the search took {search_s:.1f} s, the bare Optuna + PyTorch loop {bare_s:.1f} s for the same "
         f"{len(spec['trials'])} configs and {epochs} epochs, {spec['concurrency']} at a time "
         f"({search_s / bare_s:.2f})")
    return {"search_s": round(search_s, 2), "bare_s": round(bare_s, 2), "ratio": round(search_s / bare_s, 3),
            "trials": len(spec["trials"]), "epochs": epochs, "concurrency": spec["concurrency"]}


def _timed(command: list[str], what: str) -> float:
    began = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env=startup.private_ray_env())
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return time.perf_counter() - began


def scheduler_value(results: Path, plan: Plan, echo) -> dict:
    import pandas as pd

    runs = {}
    for scheduler, search in (("asha", "optuna"), ("fifo", "random")):
        folder, wall = tune_process(results, f"{scheduler}-{search}", echo, space="cnn", dataset=plan.scheduler_dataset,
                               trials=plan.scheduler_trials, max_epochs=plan.scheduler_epochs,
                               scheduler=scheduler, search=search)
        table = pd.read_csv(folder / "leaderboard.csv")
        runs[f"{scheduler}+{search}"] = {"best_val_acc": round(float(table["val_acc"].max()), 4),
                                         "epochs": int(table["epochs"].sum()), "wall_s": round(wall, 1)}
        echo(f"scheduler: {scheduler} + {search}: best val_acc {table['val_acc'].max():.4f}, "
             f"{int(table['epochs'].sum())} epochs, {wall:.0f} s")
    asha, fifo = runs["asha+optuna"], runs["fifo+random"]
    return {"trials": plan.scheduler_trials, "max_epochs": plan.scheduler_epochs, "dataset": plan.scheduler_dataset,
            **runs, "gap_points": round((fifo["best_val_acc"] - asha["best_val_acc"]) * 100, 2),
            "epoch_share": round(asha["epochs"] / max(1, fifo["epochs"]), 3)}
