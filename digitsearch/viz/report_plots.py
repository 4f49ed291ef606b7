"""Figures of a whole search for `digitsearch report`: learning curves of every trial, what the
searcher learned about the parameters (importances, parallel coordinates)."""
from __future__ import annotations

import warnings

import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from digitsearch.viz.plots import new_figure

STATUS_STYLE = {"completed": ("tab:blue", "ran every epoch"), "stopped early": ("tab:orange", "stopped early by ASHA"),
                "time limit": ("tab:purple", "stopped at the time limit"), "interrupted": ("tab:gray", "interrupted"),
                "error": ("tab:red", "error")}


def val_acc_by_epoch(curves: dict[str, pd.DataFrame], status: dict[str, str], max_epochs: int):
    """val_acc against epoch, one line per trial, coloured by how it ended (ASHA's stops show as x)."""
    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    shown = set()
    for trial_id, curve in curves.items():
        color, label = STATUS_STYLE.get(status.get(trial_id, ""), ("tab:gray", "other"))
        ax.plot(curve["epoch"], curve["val_acc"], color=color, alpha=0.8, linewidth=1.2,
                label=None if label in shown else label)
        shown.add(label)
        if status.get(trial_id) == "stopped early":
            ax.plot(curve["epoch"].iloc[-1], curve["val_acc"].iloc[-1], "x", color=color, markersize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_xlim(0.8, max_epochs + 0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"validation accuracy of every trained trial ({len(curves)})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def importances(values: dict[str, float]):
    names = list(values)[::-1]  # the largest on top
    fig = new_figure(7, 0.35 * len(names) + 1.4)
    ax = fig.subplots()
    ax.barh(names, [values[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance for val_acc (Optuna, fANOVA; sums to 1)")
    ax.set_title("which parameters mattered")
    fig.tight_layout()
    return fig


def parallel_coordinates(study, params: list[str]):
    """Optuna's own plot. It draws through pyplot and sets its ggplot style globally: the
    rc_context undoes the style, and closing the pyplot handle leaves a plain Figure."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_parallel_coordinate(study, params=params, target_name="val_acc")
        fig = ax.figure
        plt.close(fig)
        fig.set_size_inches(max(8, 1.6 * len(params) + 2), 5.5)
        ax.set_title("")  # Optuna's title sits on the top tick labels; ours goes above the axes
        fig.suptitle(f"the {len(params)} most important parameters of every finished trial, coloured by val_acc")
        fig.tight_layout()
    return fig


def pareto_fronts(table: pd.DataFrame, costs: list, fronts: list[pd.Series], usable: pd.Series):
    """val_acc against each cost (log x), one panel per cost: every usable trial a dot, the
    panel's own Pareto front ringed and joined as a staircase, the starting points labelled
    ("start 2"): the hand-made nets on the same axes as what the search found. The y axis
    starts a little below the front: trials far below it (one ASHA epoch of a weak config)
    would squeeze the front into a line; how many are left out is said in the legend."""
    import numpy as np

    fig = new_figure(5.6 * len(costs), 4.6)
    axes = np.atleast_1d(fig.subplots(1, len(costs)))
    for ax, cost, on in zip(axes, costs, fronts):
        measured = pd.to_numeric(table[cost.column], errors="coerce")
        shown = table[usable & (measured > 0)]
        best = shown[on.reindex(shown.index, fill_value=False)].sort_values(cost.column)
        floor = _accuracy_floor(best["val_acc"].astype(float))
        below = int((shown["val_acc"] < floor).sum())
        shown = shown[shown["val_acc"] >= floor]
        ax.scatter(shown[cost.column].astype(float), shown["val_acc"].astype(float), s=18, color="tab:gray",
                   alpha=0.6, label="trial" + (f" ({below} below val_acc {floor:.3f} not shown)" if below else ""))
        ax.step(best[cost.column].astype(float), best["val_acc"].astype(float), where="post", color="tab:red",
                linewidth=1.2)
        ax.scatter(best[cost.column].astype(float), best["val_acc"].astype(float), s=46, facecolors="none",
                   edgecolors="tab:red", linewidths=1.4, label=f"Pareto front ({len(best)})")
        _label_starting_points(ax, shown, cost.column)
        _log_axis(ax, shown[cost.column].astype(float))
        ax.set_xlabel(cost.label + " (log scale)")
        ax.set_ylabel("validation accuracy (best epoch)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("accuracy against cost: every trained trial, the front ringed, starting points labelled")
    fig.tight_layout()
    return fig


def _accuracy_floor(front_acc: pd.Series) -> float:
    """The y axis' bottom: below the front's least accurate trial by half the front's spread
    (at least 0.01), never below 0."""
    if front_acc.empty:
        return 0.0
    spread = max(front_acc.max() - front_acc.min(), 0.02)
    return max(0.0, front_acc.min() - spread / 2)


def _label_starting_points(ax, shown: pd.DataFrame, column: str) -> None:
    # alternately below and above the dot: starting points of one family often sit close together
    starts = [row for row in shown.itertuples() if str(getattr(row, "origin", "") or "").startswith("start ")]
    for k, row in enumerate(sorted(starts, key=lambda r: float(getattr(r, column)))):
        ax.annotate(row.origin, (float(getattr(row, column)), float(row.val_acc)), fontsize=7, color="tab:blue",
                    xytext=(3, -10 if k % 2 == 0 else 5), textcoords="offset points")


def _log_axis(ax, values: pd.Series) -> None:
    """Log x with plain-number labels: 1-2-5 ticks over a narrow range, powers of ten over a wide
    one (1-2-5 over four decades would overlap), none on the minor ticks."""
    import numpy as np

    ax.set_xscale("log")
    decades = np.log10(values.max() / values.min()) if len(values) and values.min() > 0 else 0
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 1.5 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.2, y=0.08)
