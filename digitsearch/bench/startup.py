"""Start-up: `digitsearch tune` start to its first trial result (with the time each phase ended),
and the peak memory (PSS) of the whole process tree (driver, Ray's daemons, workers) during a
2-trial search; --profile runs the same search again under py-spy."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from digitsearch.bench import profile
from digitsearch.bench.plan import Plan
from digitsearch.store import kept_ray


def startup(results: Path, plan: Plan, echo, env: dict | None = None, name: str = "startup",
            what: str = "start-up") -> dict:
    """A real `digitsearch tune` process: time to its first trial result, and peak tree RSS (PSS).
    By default on a Ray of its own, as a user's first search (not one `digitsearch ray up` kept)."""
    command = startup_command(results, plan, name)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=env or private_ray_env())
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
    echo(f"{what}: first trial result after {first:.1f} s ({phases}), peak memory (PSS) of the process tree "
         f"{peak / 2**30:.2f} GB")
    return {"first_result_s": first, "phases_s": phases, "peak_rss_gb": round(peak / 2**30, 3),
            "at_peak_mb": _largest(at_peak), "whole_command_s": round(time.perf_counter() - start, 2)}


def kept_up_startup(results: Path, plan: Plan, echo) -> dict:
    """The same search on a Ray `digitsearch ray up` kept: the first command after `ray up` (its
    workers prestarted and warm) and a later one (workers started for it), then `ray down`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", kept_ray.STATE_FILE_ENV: str(results / "kept-ray.json")}
    env.pop("RAY_AUTH_TOKEN", None)  # its own token
    cli = [sys.executable, "-m", "digitsearch.cli", "ray"]
    up = subprocess.run([*cli, "up"], capture_output=True, text=True, env=env)
    if up.returncode != 0:
        raise RuntimeError(f"`digitsearch ray up` failed:\n{up.stdout}{up.stderr}")
    try:
        runs = [startup(results, plan, echo, env, f"kept-up-{n}", f"kept-up Ray, {which} command")
                for n, which in ((1, "first"), (2, "a later"))]
    finally:
        subprocess.run([*cli, "down"], capture_output=True, text=True, env=env)
    # no memory figure: the kept-up Ray's processes are not in the command's process tree
    return {"first_command_s": runs[0]["first_result_s"], "later_command_s": runs[1]["first_result_s"]}


def private_ray_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", kept_ray.STATE_FILE_ENV: kept_ray.NOT_KEPT}


def startup_command(results: Path, plan: Plan, name: str) -> list[str]:
    """The start-up search: the default space, 2 trials of 1 epoch."""
    return [sys.executable, "-m", "digitsearch.cli", "tune", "--dataset", plan.dataset, "--trials", "2",
            "--max-epochs", "1", "--results", str(results), "--name", name]


def profile_startup(results: Path, plan: Plan, stem: Path, echo) -> Path:
    """The start-up search again, under py-spy: its summary beside the report."""
    raw = results / "startup-profile.raw"
    command = startup_command(results, plan, "startup-profiled")
    profile.record(command, raw)
    shown = "digitsearch tune " + " ".join(command[4:]).replace(str(results), "TMP")
    path = stem.parent / f"{stem.name}-startup-profile.md"
    path.write_text(profile.markdown(profile.summarise(raw), shown))
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
