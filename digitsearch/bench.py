"""`digitsearch bench`: how much of the machine a search turns into training, measured in one run.

1. Trial efficiency: images/s of the Keras "simple MNIST convnet" inside a Tune trial vs the
   same model, batch and threads in a bare PyTorch loop (engine.train_epoch, no Ray).
2. Search overhead: a search's wall time vs the sum of its trials' own time / concurrency,
   and the fixed cost per trial that the difference makes.
3. Scheduler value: ASHA + TPE vs FIFO + random search, same trials: best val_acc, epochs.
4. Start-up: `digitsearch tune` start to its first trial result, and the peak memory (RSS) of
   the whole process tree (driver, raylet, workers) during a 2-trial search.

Every number comes from this run; the targets are the issue's. Results go to
results/bench/<host>-<date>.json and .md.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

TARGETS = {"efficiency": 0.95, "overhead": 1.15, "fixed_cost_s": 0.5, "scheduler_gap": 0.002,
           "scheduler_epochs": 1 / 3, "startup_s": 8.0, "peak_gb": 2.5}


@dataclass(frozen=True)
class Plan:
    """How big each measurement is: --quick fits all four in under 3 minutes."""

    dataset: str  # the efficiency, overhead and start-up data
    scheduler_dataset: str
    epochs: int  # epochs of each efficiency run (the first is warm-up, not counted)
    overhead_trials: int
    scheduler_trials: int
    scheduler_epochs: int


def quick_plan(shared_mnist: str | None) -> Plan:
    # MNIST-10k's 7,200 training images make epochs long enough to time; the digits' 1,293 do not
    data = shared_mnist or "digits"
    return Plan(data, "digits", 3, 4, 6, 6)


def full_plan(shared_mnist: str) -> Plan:
    return Plan(shared_mnist, shared_mnist, 4, 8, 16, 9)


def keras_convnet() -> dict:
    """The space's first starting point: the Keras "simple MNIST convnet" (34,826 parameters)."""
    from digitsearch import spaces

    return dict(spaces.load("cnn").starting_points[0])


def fixed_space(folder: Path, config: dict) -> Path:
    """A space whose every parameter is a constant: all its trials train the same net."""
    path = folder / "keras_convnet.yaml"
    path.write_text(yaml.safe_dump({"family": "cnn", "description": "the Keras simple MNIST convnet, fixed",
                                    "params": config}, sort_keys=False))
    return path


def bare_images_per_second(dataset: str, config: dict, threads: int, epochs: int) -> float:
    """Median images/s of epochs 2.. of the same net in a plain PyTorch loop, no Ray."""
    import torch

    from digitsearch import data, engine, tasks
    from digitsearch.config import TrialConfig
    from digitsearch.trainable import build_model

    torch.set_num_threads(threads)
    bundle = data.load(dataset, seed=0)
    cfg = TrialConfig.from_flat(config, "cnn")
    mean, std = bundle.normalisation()
    torch.manual_seed(0)
    model = build_model(cfg, bundle, mean, std)
    train = engine.to_tensors(bundle.train.images, bundle.train.labels, mean, std, "cpu", tasks.for_bundle(bundle))
    optimizer = engine.make_optimizer(model, cfg.train)
    generator = torch.Generator().manual_seed(0)
    speeds = [engine.train_epoch(model, optimizer, train, cfg.train, generator)["images_per_second"]
              for _ in range(epochs)]
    return statistics.median(speeds[1:])


def _search(results: Path, name: str, echo, **options) -> tuple[Path, float]:
    """A real `digitsearch tune` process, as a user runs it; returns the experiment folder and
    the wall time from its "search:" line (Ray up, data loaded) to its "best:" line (the
    leaderboard written; Ray's shutdown after it is not the search's).
    (A search run inside the bench's own process measured its 2-thread trial a quarter slower.)"""
    command = [sys.executable, "-m", "digitsearch.cli", "tune", "--results", str(results), "--name", name, "--seed", "0"]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    began, ended, lines = None, None, []
    for line in proc.stdout:
        lines.append(line)
        if began is None and line.startswith("search:"):
            began = time.perf_counter()
        if line.startswith("best:"):
            ended = time.perf_counter()
    if proc.wait() != 0 or began is None or ended is None:
        raise RuntimeError(f"the bench's search {name!r} failed:\n" + "".join(lines[-20:]))
    return results / name, ended - began


def trial_images_per_second(results: Path, space: Path, dataset: str, threads: int, epochs: int, echo) -> float:
    import pandas as pd

    from digitsearch import experiments

    folder, _ = _search(results, f"efficiency-{threads}", echo, space=str(space), dataset=dataset, trials=1,
                        max_epochs=epochs, scheduler="fifo", cpus_per_trial=threads, max_concurrent=1)
    trial = next(iter(experiments.trial_dirs(folder).values()))
    progress = pd.read_csv(trial / "progress.csv")
    return float(progress["images_per_second"].iloc[1:].median())


def efficiency(results: Path, plan: Plan, echo) -> list[dict]:
    config = keras_convnet()
    space = fixed_space(results, config)
    rows = []
    for threads in (1, 2):
        bare = bare_images_per_second(plan.dataset, config, threads, plan.epochs)
        trial = trial_images_per_second(results, space, plan.dataset, threads, plan.epochs, echo)
        rows.append({"threads": threads, "bare_images_per_s": round(bare), "trial_images_per_s": round(trial),
                     "ratio": round(trial / bare, 3)})
        echo(f"efficiency, {threads} thread(s): bare {bare:.0f} images/s, in a trial {trial:.0f} ({trial / bare:.2f})")
    return rows


def overhead(results: Path, plan: Plan, echo) -> dict:
    import pandas as pd

    space = fixed_space(results, keras_convnet())
    folder, wall = _search(results, "overhead", echo, space=str(space), dataset=plan.dataset,
                           trials=plan.overhead_trials, max_epochs=2, scheduler="fifo", cpus_per_trial=1)
    table = pd.read_csv(folder / "leaderboard.csv")
    slots = min(plan.overhead_trials, os.cpu_count() or 1)
    own = float(table["seconds"].sum())
    ideal = own / slots
    fixed = (wall - ideal) * slots / plan.overhead_trials
    echo(f"overhead: {plan.overhead_trials} trials, {slots} at a time: wall {wall:.1f} s vs trials' own "
         f"{own:.1f} s / {slots} = {ideal:.1f} s ({wall / ideal:.2f}), {fixed:.2f} s fixed cost per trial")
    return {"trials": plan.overhead_trials, "concurrency": slots, "wall_s": round(wall, 2),
            "trials_own_s": round(own, 2), "ratio": round(wall / ideal, 3), "fixed_cost_per_trial_s": round(fixed, 3)}


def scheduler_value(results: Path, plan: Plan, echo) -> dict:
    import pandas as pd

    runs = {}
    for scheduler, search in (("asha", "optuna"), ("fifo", "random")):
        folder, wall = _search(results, f"{scheduler}-{search}", echo, space="cnn", dataset=plan.scheduler_dataset,
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


def startup(results: Path, plan: Plan, echo) -> dict:
    """A real `digitsearch tune` process: time to its first trial result, and peak tree RSS."""
    import psutil

    command = [sys.executable, "-m", "digitsearch.cli", "tune", "--dataset", plan.dataset, "--trials", "2",
               "--max-epochs", "1", "--results", str(results), "--name", "startup"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first, peak, lines = None, 0, []
    os.set_blocking(proc.stdout.fileno(), False)
    while proc.poll() is None:
        peak = max(peak, _tree_rss(psutil.Process(proc.pid)))
        for line in iter(proc.stdout.readline, ""):
            lines.append(line)
            if first is None and line.startswith("[1/"):
                first = time.perf_counter() - start
        time.sleep(0.1)
    lines.extend(proc.stdout.read().splitlines(True))
    if proc.returncode != 0:
        raise RuntimeError("the start-up search failed:\n" + "".join(lines[-20:]))
    echo(f"start-up: first trial result after {first:.1f} s, peak memory (PSS) of the process tree {peak / 2**30:.2f} GB")
    return {"first_result_s": round(first, 2), "peak_rss_gb": round(peak / 2**30, 3),
            "whole_command_s": round(time.perf_counter() - start, 2)}


def _tree_rss(root) -> int:
    """Memory of a process and all its descendants. PSS where the OS gives it: Ray's processes
    share torch's pages and the object store's shared memory, which plain RSS counts once per
    process; PSS gives each process its share."""
    import psutil

    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.AccessDenied:
            total += proc.memory_info().rss
        except psutil.Error:
            continue  # ended between the listing and the read
    return total


def run(quick: bool, out: Path, shared_mnist: str | None, echo: Callable[[str], None] = print) -> Path:
    plan = quick_plan(shared_mnist) if quick else full_plan(shared_mnist)
    work = Path(tempfile.mkdtemp(prefix="digitsearch-bench-"))
    began = time.perf_counter()
    try:
        report = {"host": socket.gethostname(), "date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick,
                  "machine": _machine(), "plan": plan.__dict__, "targets": TARGETS}
        report["startup"] = startup(work, plan, echo)  # first: a cold machine, nothing else running
        report["efficiency"] = efficiency(work, plan, echo)
        report["overhead"] = overhead(work, plan, echo)
        report["scheduler"] = scheduler_value(work, plan, echo)
        report["bench_seconds"] = round(time.perf_counter() - began, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return write(report, out, echo)


def _machine() -> dict:
    import ray
    import torch

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "platform": platform.platform(), "cuda": torch.cuda.is_available()}


def write(report: dict, out: Path, echo) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{report['host']}-{report['date'][:10]}{'-quick' if report['quick'] else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    echo(f"wrote {stem}.json and {stem}.md")
    return stem.with_suffix(".md")


def _ok(passed: bool) -> str:
    return "yes" if passed else "**no**"


def markdown(r: dict) -> str:
    t, o, s, u = r["targets"], r["overhead"], r["scheduler"], r["startup"]
    m = r["machine"]
    rows = [(f"trial efficiency, {e['threads']} thread(s)", f">= {t['efficiency']}",
             f"{e['ratio']:.2f} ({e['trial_images_per_s']} vs {e['bare_images_per_s']} images/s)",
             _ok(e["ratio"] >= t["efficiency"])) for e in r["efficiency"]]
    rows += [
        ("search wall / (trials' own time / concurrency)", f"<= {t['overhead']}",
         f"{o['ratio']:.2f} ({o['wall_s']} s vs {o['trials_own_s']} s / {o['concurrency']})", _ok(o["ratio"] <= t["overhead"])),
        ("fixed cost per trial", f"<= {t['fixed_cost_s']} s", f"{o['fixed_cost_per_trial_s']:.2f} s",
         _ok(o["fixed_cost_per_trial_s"] <= t["fixed_cost_s"])),
        ("ASHA+TPE best val_acc vs FIFO+random", "within 0.2 points",
         f"{s['asha+optuna']['best_val_acc']:.4f} vs {s['fifo+random']['best_val_acc']:.4f} ({s['gap_points']:+.2f} points)",
         _ok(s["gap_points"] <= t["scheduler_gap"] * 100)),
        ("ASHA+TPE epochs / FIFO+random epochs", "<= 0.33",
         f"{s['epoch_share']:.2f} ({s['asha+optuna']['epochs']} vs {s['fifo+random']['epochs']})",
         _ok(s["epoch_share"] <= t["scheduler_epochs"] + 1e-9)),
        ("command start to first trial result", f"<= {t['startup_s']:.0f} s", f"{u['first_result_s']:.1f} s",
         _ok(u["first_result_s"] <= t["startup_s"])),
        ("peak memory (PSS) of the process tree, 2-trial search", f"<= {t['peak_gb']} GB", f"{u['peak_rss_gb']:.2f} GB",
         _ok(u["peak_rss_gb"] <= t["peak_gb"])),
    ]
    lines = [f"# digitsearch bench{' --quick' if r['quick'] else ''}: {r['host']}, {r['date']}", "",
             f"{m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}, Ray {m['ray']}, CUDA {m['cuda']}; "
             f"the whole bench took {r['bench_seconds']:.0f} s. Data: efficiency/overhead/start-up on "
             f"`{r['plan']['dataset']}`, scheduler on `{s['dataset']}` ({s['trials']} trials, up to {s['max_epochs']} epochs).",
             "", "| measure | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "Produced by `digitsearch bench" + (" --quick" if r["quick"] else "") + "` (`make bench`)."]
    return "\n".join(lines) + "\n"
