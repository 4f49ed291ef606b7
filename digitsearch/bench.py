"""`digitsearch bench`: how much of the machine a search turns into training, measured in one run.

1. Trial efficiency: images/s of the Keras "simple MNIST convnet" inside a Tune trial vs the
   same model, batch and threads in a bare PyTorch loop (engine.train_epoch, no Ray).
2. Search overhead: a search's wall time vs the sum of its trials' own time / concurrency.
   Two searches of the same net, a small and a large one, split the difference into a cost
   paid once (Ray's workers starting, importing torch) and a fixed cost per trial (the slope).
3. Scheduler value: ASHA + TPE vs FIFO + random search, same trials: best val_acc, epochs.
4. Start-up: `digitsearch tune` start to its first trial result (with the time each phase
   ended), and the peak memory (PSS) of the whole process tree (driver, Ray's daemons,
   workers) during a 2-trial search, with the largest processes at the peak.

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
    overhead_trials: tuple[int, int]  # the small and the large search
    scheduler_trials: int
    scheduler_epochs: int
    threads: tuple[int, ...] = (1, 2)  # the efficiency runs' torch threads


def quick_plan(shared_mnist: str | None) -> Plan:
    # MNIST-10k's 7,200 training images make epochs long enough to time; the digits' 1,293 do not
    data = shared_mnist or "digits"
    return Plan(data, "digits", 2, (2, 4), 4, 4)


def full_plan(shared_mnist: str) -> Plan:
    return Plan(shared_mnist, shared_mnist, 4, (4, 16), 16, 9)


def smoke_plan() -> Plan:
    """The smallest run that still measures all four (the test suite's): every number is real,
    and too small to mean much."""
    return Plan("digits", "digits", 2, (1, 2), 2, 1, threads=(1,))


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
    for threads in plan.threads:
        bare = bare_images_per_second(plan.dataset, config, threads, plan.epochs)
        trial = trial_images_per_second(results, space, plan.dataset, threads, plan.epochs, echo)
        rows.append({"threads": threads, "bare_images_per_s": round(bare), "trial_images_per_s": round(trial),
                     "ratio": round(trial / bare, 3)})
        echo(f"efficiency, {threads} thread(s): bare {bare:.0f} images/s, in a trial {trial:.0f} ({trial / bare:.2f})")
    return rows


def _overhead_search(results: Path, plan: Plan, trials: int, echo) -> dict:
    """One search of the fixed Keras net: its wall time, its trials' own time, and the excess."""
    import pandas as pd

    space = fixed_space(results, keras_convnet())
    folder, wall = _search(results, f"overhead-{trials}", echo, space=str(space), dataset=plan.dataset,
                           trials=trials, max_epochs=2, scheduler="fifo", cpus_per_trial=1)
    own = float(pd.read_csv(folder / "leaderboard.csv")["seconds"].sum())
    slots = min(trials, os.cpu_count() or 1)
    # the slot-seconds not spent training: what the search costs beyond its trials
    excess = wall * slots - own
    echo(f"overhead: {trials} trials, {slots} at a time: wall {wall:.1f} s vs trials' own {own:.1f} s / {slots} "
         f"= {own / slots:.1f} s ({wall * slots / own:.2f})")
    return {"trials": trials, "concurrency": slots, "wall_s": round(wall, 2), "trials_own_s": round(own, 2),
            "ratio": round(wall * slots / own, 3), "excess_slot_s": round(excess, 2)}


def overhead(results: Path, plan: Plan, echo) -> dict:
    """The larger search's wall/ideal ratio; the two searches' excess split into a cost per
    trial (the slope) and a cost paid once per search (the intercept: workers starting)."""
    small, large = (_overhead_search(results, plan, n, echo) for n in plan.overhead_trials)
    per_trial = (large["excess_slot_s"] - small["excess_slot_s"]) / (large["trials"] - small["trials"])
    once = (small["excess_slot_s"] - per_trial * small["trials"]) / large["concurrency"]
    echo(f"overhead: {per_trial:.2f} s fixed cost per trial, {once:.1f} s once per search")
    return {**large, "fixed_cost_per_trial_s": round(per_trial, 3), "once_per_search_s": round(once, 2),
            "searches": [small, large]}


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

    command = startup_command(results, plan, "startup")
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    phases, peak, at_peak, lines = {}, 0, [], []
    os.set_blocking(proc.stdout.fileno(), False)
    while proc.poll() is None:
        sizes = _tree_memory(psutil.Process(proc.pid))
        if sum(size for _, size in sizes) > peak:
            peak, at_peak = sum(size for _, size in sizes), sizes
        for line in iter(proc.stdout.readline, ""):
            lines.append(line)
            for phase, prefix in STARTUP_PHASES.items():
                if phase not in phases and line.startswith(prefix):
                    phases[phase] = round(time.perf_counter() - start, 2)
        time.sleep(0.1)
    lines.extend(proc.stdout.read().splitlines(True))
    if proc.returncode != 0 or "first_result" not in phases:
        raise RuntimeError("the start-up search failed:\n" + "".join(lines[-20:]))
    first = phases["first_result"]
    echo(f"start-up: first trial result after {first:.1f} s ({phases}), peak memory (PSS) of the process tree "
         f"{peak / 2**30:.2f} GB")
    return {"first_result_s": first, "phases_s": phases, "peak_rss_gb": round(peak / 2**30, 3),
            "at_peak_mb": _largest(at_peak), "whole_command_s": round(time.perf_counter() - start, 2)}


def startup_command(results: Path, plan: Plan, name: str) -> list[str]:
    """The start-up search: the default space, 2 trials of 1 epoch."""
    return [sys.executable, "-m", "digitsearch.cli", "tune", "--dataset", plan.dataset, "--trials", "2",
            "--max-epochs", "1", "--results", str(results), "--name", name]


def profile_startup(results: Path, plan: Plan, stem: Path, echo) -> Path:
    """The start-up search again, under py-spy: its summary beside the report."""
    from digitsearch import bench_profile

    raw = results / "startup-profile.raw"
    command = startup_command(results, plan, "startup-profiled")
    bench_profile.record(command, raw)
    shown = "digitsearch tune " + " ".join(command[4:]).replace(str(results), "TMP")
    path = stem.parent / f"{stem.name}-startup-profile.md"
    path.write_text(bench_profile.markdown(bench_profile.summarise(raw), shown))
    echo(f"wrote {path}")
    return path


# when each phase of `digitsearch tune` ended, by the line it prints then
STARTUP_PHASES = {"data_loaded": "data: ", "ray_up": "search: ", "first_result": "[1/"}


def _largest(sizes: list[tuple[str, int]], keep: int = 8) -> dict[str, float]:
    """Processes at the peak, largest first, in MB (the same name twice gets #2)."""
    named: dict[str, float] = {}
    for name, size in sorted(sizes, key=lambda item: -item[1])[:keep]:
        key = name if name not in named else f"{name} #{sum(k.startswith(name) for k in named) + 1}"
        named[key] = round(size / 2**20, 1)
    return named


def _process_name(proc) -> str:
    """`ray::ImplicitFunc.train`, `raylet`, `digitsearch tune`: what a reader recognises."""
    words = proc.cmdline() or [proc.name()]
    if words[0].startswith("ray::"):
        return words[0]
    script = next((w for w in words[1:] if w.endswith(".py") or w == "digitsearch.cli"), words[0])
    return "digitsearch tune (driver)" if script == "digitsearch.cli" else Path(script).name


def _tree_memory(root) -> list[tuple[str, int]]:
    """(name, bytes) for a process and all its descendants. PSS where the OS gives it: Ray's
    processes share torch's pages and the object store's shared memory, which plain RSS counts
    once per process; PSS gives each process its share."""
    import psutil

    sizes = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            try:
                info = proc.memory_full_info()
                size = getattr(info, "pss", info.rss)
            except psutil.AccessDenied:
                size = proc.memory_info().rss
            sizes.append((_process_name(proc), size))
        except psutil.Error:
            continue  # ended between the listing and the read
    return sizes


def _tree_rss(root) -> int:
    return sum(size for _, size in _tree_memory(root))


def run(quick: bool, out: Path, shared_mnist: str | None, echo: Callable[[str], None] = print,
        smoke: bool = False, profile: bool = False) -> Path:
    plan = smoke_plan() if smoke else quick_plan(shared_mnist) if quick else full_plan(shared_mnist)
    if profile:
        from digitsearch import bench_profile

        bench_profile.py_spy()  # missing: one line now, not after the whole bench
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
        written = write(report, out, echo)
        if profile:  # after the timed part: py-spy's sampling slows what it watches
            profile_startup(work, plan, written.with_suffix(""), echo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written


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
        ("fixed cost per trial (slope over two search sizes)", f"<= {t['fixed_cost_s']} s",
         f"{o['fixed_cost_per_trial_s']:.2f} s (+ {o['once_per_search_s']:.1f} s once per search)",
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
    phases = ", ".join(f"{name.replace('_', ' ')} {seconds:.1f} s" for name, seconds in u.get("phases_s", {}).items())
    largest = ", ".join(f"{name} {mb:.0f}" for name, mb in u.get("at_peak_mb", {}).items())
    lines += ["", f"Start-up, when each phase ended: {phases}.", "",
              f"Largest processes at the memory peak (MB PSS): {largest}."] if phases else []
    command = "digitsearch bench --quick` (`make bench-quick`)" if r["quick"] else "digitsearch bench` (`make bench`)"
    lines += ["", f"Produced by `{command}."]
    return "\n".join(lines) + "\n"
