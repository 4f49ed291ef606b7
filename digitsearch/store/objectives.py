"""The objectives a search can trade (`tune --objective`) and `best --pick`'s choices, as the
command line spells them. No pandas here: request.py (imported by the CLI at start) reads it;
the front itself is store/pareto.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from digitsearch.errors import UserError


@dataclass(frozen=True)
class Objective:
    name: str  # as --objective spells it
    metric: str  # the trial's result key (what the study is told)
    column: str  # the leaderboard's column
    mode: str  # "max" or "min"
    label: str  # an axis or table heading


OBJECTIVES = {o.name: o for o in (
    Objective("accuracy", "best_val_acc", "val_acc", "max", "val_acc"),
    Objective("latency", "latency_ms", "latency_ms", "min", "CPU latency per image (ms, batch 1)"),
    Objective("params", "params", "n_params", "min", "trainable parameters"),
    Objective("mflops", "mflops", "mflops", "min", "forward MFLOPs per image"),
    Objective("size", "model_kb", "model_kb", "min", "model size (kB)"),
)}
# a search that trades nothing (--objective accuracy) still gets a front: the trade users ask about
DEFAULT_COSTS = ("latency",)


def parse_objective(text: str) -> tuple[str, ...]:
    """"accuracy,latency" -> ("accuracy", "latency"); accuracy first (ASHA stops on it)."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise UserError(f"--objective {text!r}: unknown {', '.join(map(repr, unknown))}; "
                        f"choose from {', '.join(OBJECTIVES)}, e.g. accuracy,latency")
    if not names or names[0] != "accuracy" or "accuracy" in names[1:]:
        raise UserError(f"--objective {text!r}: start with accuracy (ASHA stops trials on it), "
                        f"then the costs to trade it against, e.g. accuracy,latency")
    if len(set(names)) != len(names):
        raise UserError(f"--objective {text!r} names an objective twice")
    return names


PICKS = ("best", "fastest", "smallest", "fastest-within:POINTS", "smallest-within:POINTS")


@dataclass(frozen=True)
class Pick:
    by: str  # "best", "fastest" or "smallest"
    within: float | None = None  # accuracy points (percent) below the best that are still acceptable


def parse_pick(text: str) -> Pick:
    """"smallest-within:0.3" -> Pick("smallest", 0.3); "fastest" -> Pick("fastest")."""
    head, sep, points = text.partition(":")
    kind = head.removesuffix("-within")
    if kind not in ("best", "fastest", "smallest") or (sep and not head.endswith("-within")) \
            or (head.endswith("-within") and not sep) or (kind == "best" and head != "best"):
        raise UserError(f"--pick {text!r}: choose one of {', '.join(PICKS)}")
    if not sep:
        return Pick(kind)
    try:
        within = float(points)
    except ValueError:
        within = -1.0
    if not 0 <= within <= 100:
        raise UserError(f"--pick {text!r}: POINTS is how many accuracy points below the best are acceptable, "
                        f"e.g. {kind}-within:0.3")
    return Pick(kind, within)
