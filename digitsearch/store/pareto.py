"""Accuracy against cost: the Pareto front of a leaderboard, and `best --pick`'s choice from it
(the objectives and picks as the command line spells them: store/objectives.py).

A trial is on the front when no other usable trial is at least as accurate and at least as
cheap on every cost, and strictly better on one. Ties (the same accuracy and cost) leave both
on it: neither is better. Only trials with a real best epoch and val_acc above zero take part
(leaderboard.TRAINED_STATUSES); a trial without a cost figure (an experiment from before costs
were measured, a trial that errored) is on no front.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from digitsearch.errors import UserError
from digitsearch.store.objectives import DEFAULT_COSTS, OBJECTIVES, Objective, Pick

# a leaderboard trial with a real best epoch (and its checkpoint): one the best may be, or that may be
# retrained ("time limit": stopped by the trainable at the search's time limit, note "time limit: ...")
TRAINED_STATUSES = ("completed", "stopped early", "interrupted", "time limit")


def costs_of(objective: tuple[str, ...] | None) -> tuple[Objective, ...]:
    """The cost objectives a leaderboard's front is over: the search's (SearchRequest.objectives,
    accuracy first), else DEFAULT_COSTS."""
    chosen = tuple(objective or ())[1:] or DEFAULT_COSTS
    return tuple(OBJECTIVES[n] for n in chosen)


def usable(table: pd.DataFrame) -> pd.Series:
    """The rows with a real best epoch and val_acc above zero: those the best may be, a front may
    hold, an ensemble or `--pick` may take (NaN, an errored trial's, is not above zero)."""
    return table["status"].isin(TRAINED_STATUSES) & (table["val_acc"] > 0)


def front(table: pd.DataFrame, costs: tuple[Objective, ...]) -> pd.Series:
    """True for each row of `table` on the Pareto front of val_acc (max) against `costs` (min)."""
    columns = [c.column for c in costs]
    if table.empty or any(c not in table.columns for c in columns):
        return pd.Series(False, index=table.index, dtype=bool)
    values = table[columns].apply(pd.to_numeric, errors="coerce")
    taking = usable(table) & values.notna().all(axis=1)
    # every objective as "smaller is better": accuracy negated
    points = np.column_stack([-table.loc[taking, "val_acc"].to_numpy(float), values[taking].to_numpy(float)])
    on = np.ones(len(points), dtype=bool)
    for i, point in enumerate(points):
        dominated_by = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        on[i] = not dominated_by.any()
    marked = pd.Series(False, index=table.index, dtype=bool)
    marked[taking[taking].index] = on
    return marked


def why_picked(row: pd.Series, choice: Pick) -> str:
    """e.g. "smallest within 0.3 points of the best val_acc: 34,826 parameters, 0.218 ms per image"."""
    within = f" within {choice.within:g} points of the best val_acc" if choice.within is not None else ""
    figures = [f"{int(row['n_params']):,} parameters"]
    if pd.notna(row.get("latency_ms", float("nan"))):
        figures.append(f"{float(row['latency_ms']):.3g} ms per image")
    return f"{choice.by}{within}: val_acc {float(row['val_acc']):.4f}, {', '.join(figures)}"


def pick(table: pd.DataFrame, choice: Pick) -> pd.Series:
    """The leaderboard row `choice` names. fastest / smallest: the lowest latency / parameter
    count among usable trials (within `within` points of the best val_acc when given); ties go
    to the more accurate. A leaderboard without latency figures cannot answer fastest."""
    candidates = table[usable(table)]
    if candidates.empty:
        raise UserError("no trial has a usable val_acc to pick from; see the leaderboard's status and note columns")
    if choice.by == "best":
        return candidates.sort_values("val_acc", ascending=False, kind="stable").iloc[0]
    column = OBJECTIVES["latency" if choice.by == "fastest" else "params"].column
    if column not in candidates or candidates[column].isna().all():
        raise UserError(f"--pick {choice.by}: this experiment's leaderboard has no {column} figures "
                        f"(searched before costs were measured); search again to pick by them")
    candidates = candidates[candidates[column].notna()]
    if choice.within is not None:
        floor = candidates["val_acc"].max() - choice.within / 100
        candidates = candidates[candidates["val_acc"] >= floor - 1e-12]
    ranked = candidates.assign(_cost=pd.to_numeric(candidates[column])).sort_values(
        ["_cost", "val_acc"], ascending=[True, False], kind="stable")
    return ranked.drop(columns="_cost").iloc[0]
