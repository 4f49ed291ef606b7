"""The bench's report: results/bench/<host>-<date>[-quick].json and .md, a table of every
measure against its target."""
from __future__ import annotations

import json
import os
import platform
from importlib.metadata import version
from pathlib import Path


def machine() -> dict:
    import torch

    # Ray's version from its metadata: importing Ray here would put it on the bench's own path
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "ray": version("ray"), "platform": platform.platform(), "cuda": torch.cuda.is_available()}


def write(report: dict, out: Path, echo) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{report['host']}-{report['date'][:10]}{'-quick' if report['quick'] else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    echo(f"wrote {stem}.json and {stem}.md")
    return stem.with_suffix(".md")


def _ok(passed: bool) -> str:
    return "yes" if passed else "**no**"


def _fixed_cost_row(o: dict, t: dict) -> tuple:
    what, target = "fixed cost per trial (a slot's idle time between two trials)", f"<= {t['fixed_cost_s']} s"
    cost = o.get("fixed_cost_per_trial_s")
    if cost is None:
        return what, target, "not measurable (no trial followed another on its slot)", "-"
    return what, target, f"{cost:.2f} s (median of {o['handovers']})", _ok(cost <= t["fixed_cost_s"])


def _demo_row(d: dict | None, t: dict) -> tuple | None:
    if not d:
        return None
    return ("`make demo` search / bare Optuna + PyTorch loop (same configs, epochs, concurrency)",
            f"<= {t['demo_ratio']}", f"{d['ratio']:.2f} ({d['search_s']:.1f} s vs {d['bare_s']:.1f} s; "
            f"{d['trials']} configs, {d['epochs']} epochs, {d['concurrency']} at a time)",
            _ok(d["ratio"] <= t["demo_ratio"]))


def markdown(r: dict) -> str:
    t, o, s, u = r["targets"], r["overhead"], r["scheduler"], r["startup"]
    m = r["machine"]
    rows = [(f"trial efficiency, {e['threads']} thread(s)", f">= {t['efficiency']}",
             f"{e['ratio']:.2f} ({e['trial_images_per_s']} vs {e['bare_images_per_s']} images/s)",
             _ok(e["ratio"] >= t["efficiency"])) for e in r["efficiency"]]
    rows += [
        ("search wall / (trials' own time / concurrency)", f"<= {t['overhead']}",
         f"{o['ratio']:.2f} ({o['wall_s']} s vs {o['trials_own_s']} s / {o['concurrency']})",
         _ok(o["ratio"] <= t["overhead"])),
        _fixed_cost_row(o, t),
        _demo_row(r.get("demo"), t),
        ("ASHA+TPE best val_acc vs FIFO+random", "within 0.2 points",
         f"{s['asha+optuna']['best_val_acc']:.4f} vs {s['fifo+random']['best_val_acc']:.4f} "
         f"({s['gap_points']:+.2f} points)",
         _ok(s["gap_points"] <= t["scheduler_gap"] * 100)),
        ("ASHA+TPE epochs / FIFO+random epochs", "<= 0.33",
         f"{s['epoch_share']:.2f} ({s['asha+optuna']['epochs']} vs {s['fifo+random']['epochs']})",
         _ok(s["epoch_share"] <= t["scheduler_epochs"] + 1e-9)),
        ("command start to first trial result", f"<= {t['startup_s']:.0f} s", f"{u['first_result_s']:.1f} s",
         _ok(u["first_result_s"] <= t["startup_s"])),
        ("peak memory (PSS) of the process tree, 2-trial search", f"<= {t['peak_gb']} GB", f"{u['peak_rss_gb']:.2f} GB",
         _ok(u["peak_rss_gb"] <= t["peak_gb"])),
    ]
    rows = [row for row in rows if row is not None]
    kept = r.get("kept_up")
    if kept:
        rows.append(("... on a Ray `digitsearch ray up` kept: first command / a later one",
                     f"<= {t['startup_s']:.0f} s",
                     f"{kept['first_command_s']:.1f} s / {kept['later_command_s']:.1f} s",
                     _ok(max(kept["first_command_s"], kept["later_command_s"]) <= t["startup_s"])))
    lines = [f"# digitsearch bench{' --quick' if r['quick'] else ''}: {r['host']}, {r['date']}", "",
             f"{m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}, Ray {m['ray']}, CUDA {m['cuda']}; "
             f"the whole bench took {r['bench_seconds']:.0f} s. Data: efficiency/overhead/start-up on "
             f"`{r['plan']['dataset']}`, scheduler on `{s['dataset']}` ({s['trials']} trials, "
             f"up to {s['max_epochs']} epochs).",
             "", "| measure | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    phases = ", ".join(f"{name.replace('_', ' ')} {seconds:.1f} s" for name, seconds in u.get("phases_s", {}).items())
    largest = ", ".join(f"{name} {mb:.0f}" for name, mb in u.get("at_peak_mb", {}).items())
    lines += ["", f"Start-up, when each phase ended: {phases}.", "",
              f"Largest processes at the memory peak (MB PSS): {largest}."] if phases else []
    command = "digitsearch bench --quick` (`make bench-quick`)" if r["quick"] else "digitsearch bench` (`make bench`)"
    lines += ["", f"Produced by `{command}."]
    return "\n".join(lines) + "\n"
