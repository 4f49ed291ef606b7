"""`digitsearch report`: results/<name>/report/report.md and its PNGs, from what a search and
its retrain wrote (leaderboard.csv, Tune's per-trial progress.csv, optuna.db, final/)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from digitsearch.core.timebudget import shown
from digitsearch.errors import UserError
from digitsearch.store import experiments, leaderboard, pareto, study, trials
from digitsearch.store.layout import FINAL_DIR, METRICS_FILE, REPORT_DIR, SEARCH_PLAN_FILE, final_dir
from digitsearch.store.leaderboard import SAMPLED, STEP, SUMMARY_COLUMNS, short_config, start_number
from digitsearch.store.objectives import OBJECTIVES
from digitsearch.viz import plots, report_plots

TOP = 10


def _curves(folder: Path, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each trained trial's val_acc per epoch, from the CSV Tune wrote beside it."""
    curves, dirs = {}, trials.trial_dirs(folder)
    for row in table.itertuples():
        progress = dirs.get(row.trial_id, folder / "missing") / "progress.csv"
        if row.epochs > 0 and progress.is_file():
            curve = pd.read_csv(progress)
            curve = curve[curve["epoch"] > 0][["epoch", "val_acc"]]
            if len(curve):
                curves[row.trial_id] = curve
    return curves


def _md_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _in_space_order(config: dict, table: pd.DataFrame) -> dict:
    """The leaderboard's column order is the space's (architecture first, then training);
    params.json is alphabetical."""
    order = [c for c in table.columns if c not in SUMMARY_COLUMNS]
    return {k: config[k] for k in sorted(config, key=lambda k: order.index(k) if k in order else len(order))}


def leaderboard_md(table: pd.DataFrame, configs: dict[str, dict]) -> str:
    top = table.head(TOP)
    per_epoch = [f"{s / e:.1f}" if e else "-" for s, e in zip(top["seconds"], top["epochs"])]
    shown = pd.DataFrame({
        "rank": range(1, len(top) + 1), "trial": top["trial_id"], "family": top["family"],
        "key parameters": [short_config(_in_space_order(configs.get(t, {}), table), width=90).replace("|", "/")
                           for t in top["trial_id"]],
        "parameters": [f"{int(n):,}" if n > 0 else "-" for n in top["n_params"]],  # 0: never built
        "epochs run": top["epochs"],
        "s/epoch": per_epoch, "val acc": [f"{v:.4f}" if v == v else "-" for v in top["val_acc"]],
        "status": top["status"],
    })
    if "origin" in top:
        shown["origin"] = [v if isinstance(v, str) and v else "-" for v in top["origin"]]
    return _md_table(shown)


def with_origin(folder: Path, table: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with its origin column ("start k" / "sampled"); a leaderboard written
    before it had one gets it from the trials' configs (store.trials), or "" where the space
    file has moved."""
    if "origin" in table and table["origin"].fillna("").ne("").any():
        return table
    try:
        starts = trials.starting_point_trials(folder)
    except (UserError, OSError):
        starts = None
    table = table.copy()
    table["origin"] = ["" if starts is None else f"start {starts[t]}" if t in starts else SAMPLED
                       for t in table["trial_id"]]
    return table


def _trial(row) -> str:
    step = f", a {row.origin}" if str(row.origin).startswith(STEP) else ""  # "a step from start 1 (lr)"
    return f"trial {row.trial_id} (val_acc {row.val_acc:.4f}{step})"


def _compared(verb: str, other: str, gap: float) -> str:
    """("beats", "X", 0.0139) -> "beats X by 0.0139 val_acc"; a gap of 0: "ties X"."""
    return f"ties {other}" if gap == 0 else f"{verb} {other} by {gap:.4f} val_acc"


def origin_md(table: pd.DataFrame, configs: dict[str, dict]) -> str:
    """One sentence: whether the best trial (the leaderboard's first trained one, as in
    best.json) is one of the space's starting points (its number and key parameters: a point
    has no description of its own) or a sampled config, and by how much the best sampled config
    beats or trails the best starting point on val_acc. "" when the table cannot say (no
    trained trial, or no origin: an old experiment whose space file has moved)."""
    origin = table["origin"].fillna("").astype(str) if "origin" in table else pd.Series("", index=table.index)
    trained = table[pareto.usable(table) & (origin != "")]
    if trained.empty:
        return ""
    is_start = [start_number(o) is not None for o in trained["origin"]]
    starts, sampled = trained[is_start], trained[[not s for s in is_start]]
    winner = trained.iloc[0]
    if start_number(winner.origin) is not None:
        described = short_config(_in_space_order(configs.get(winner.trial_id, {}), table), width=80).replace("|", "/")
        head = (f"The best trial, {_trial(winner)}, is the space's starting point {start_number(winner.origin)}"
                + (f" (`{described}`)" if described else ""))
        if sampled.empty:
            return f"{head}; no sampled config trained."
        best = sampled.iloc[0]
        margin = _compared("trails", "it", winner.val_acc - best.val_acc)
        return f"{head}; the best sampled config, {_trial(best)}, {margin}."
    head = f"The best trial, {_trial(winner)}, is a sampled config"
    if starts.empty:
        had_starts = any(start_number(o) is not None for o in origin)
        return head + ("; none of the space's starting points trained." if had_starts
                       else "; the space has no starting points to compare it with.")
    best = starts.iloc[0]
    other = f"the best starting point ({start_number(best.origin)}: trial {best.trial_id}, val_acc {best.val_acc:.4f})"
    return f"{head}: it {_compared('beats', other, winner.val_acc - best.val_acc)}."


def families_md(table: pd.DataFrame) -> str:
    """The reports' "results compared" table: one row per family."""
    rows = []
    for family, group in table.groupby("family", sort=False):
        trained = group[group["epochs"] > 0]
        best = trained.iloc[0] if len(trained) else None
        rows.append({
            "family": family, "trials": len(group), "trained": len(trained),
            "best val acc": f"{best.val_acc:.4f}" if best is not None else "-",
            "median val acc": f"{trained.val_acc.median():.4f}" if len(trained) else "-",
            "parameters of the best": f"{int(best.n_params):,}" if best is not None else "-",
            "median s/epoch": f"{(trained.seconds / trained.epochs).median():.1f}" if len(trained) else "-",
        })
    return _md_table(pd.DataFrame(rows))


def finished_as_complete(searched):
    """The study's finished trials, in memory, each COMPLETE with its value: a COMPLETE trial's
    own (its best val_acc), a PRUNED one's best step (its best val_acc before ASHA or the time
    limit stopped it), as the leaderboard has them. Optuna's importances and parallel
    coordinates read COMPLETE trials only, and most trials of an ASHA search are PRUNED."""
    import optuna

    copy = optuna.create_study(direction="maximize")
    done = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    for trial in searched.get_trials(deepcopy=False, states=done):
        steps = list(trial.intermediate_values.values())
        # a multi-objective study's accuracy is its first value; its pruned trials have no steps
        value = (trial.values or [None])[0] if trial.state == optuna.trial.TrialState.COMPLETE \
            else max(steps, default=None)
        if value is not None:
            copy.add_trial(optuna.trial.create_trial(params=trial.params, distributions=trial.distributions,
                                                     value=value))
    return copy


def _importances(study) -> dict[str, float]:
    """{} when the study cannot say (fewer than two finished trials, nothing varied)."""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # the same figure every time
            return optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):
        return {}


class ReportWriter:
    """Collects the report's sections and saves its figures as PNGs beside report.md."""

    def __init__(self, out: Path):
        self.out = out
        self.sections: list[str] = []
        self.pngs: list[str] = []

    def add(self, *parts: str) -> None:
        self.sections.append("\n\n".join(parts))

    def figure(self, fig, name: str, caption: str) -> str:
        fig.savefig(self.out / name, dpi=110)
        self.pngs.append(name)
        return f"![{caption}]({name})"

    def save(self) -> Path:
        path = self.out / "report.md"
        path.write_text("\n\n".join(self.sections) + "\n")
        return path


def _search_sections(doc: ReportWriter, folder: Path, meta: dict, table: pd.DataFrame, configs: dict) -> None:
    counts = table["status"].value_counts()
    doc.add(f"## Leaderboard (top {min(TOP, len(table))} of {len(table)})",
            leaderboard_md(table, configs),
            "Status counts: " + ", ".join(f"{status} {n}" for status, n in counts.items()) + ".")
    curves = _curves(folder, table)
    if curves:
        status = dict(zip(table["trial_id"], table["status"]))
        fig = report_plots.val_acc_by_epoch(curves, status, int(meta["max_epochs"]))
        trained = int(table["epochs"].sum())
        doc.add("## Validation accuracy per epoch",
                doc.figure(fig, "val_acc_by_epoch.png", "val_acc against epoch for every trial"),
                f"{len(curves)} trials trained {trained} epochs in all; running every trial to "
                f"{meta['max_epochs']} epochs would have taken {len(curves) * int(meta['max_epochs'])}.")
    searched = finished_as_complete(study.load(folder))
    values = _importances(searched)
    if values:
        top = list(values)[:6]
        doc.add("## What mattered",
                f"Optuna's fANOVA importances over the {len(searched.trials)} finished trials of the study "
                f"(`optuna.db`), each by its best val_acc as in the leaderboard (a trial ASHA stopped, pruned in "
                f"the study, by its best epoch before the stop); with few trials they are a rough guide.",
                doc.figure(report_plots.importances(values), "param_importances.png", "parameter importances"),
                doc.figure(report_plots.parallel_coordinates(searched, top), "parallel_coordinates.png",
                           "parallel coordinates of the most important parameters"))
    doc.add("## Families compared", families_md(table))
    _front_section(doc, meta, table)


# what the front's table shows, as leaderboard columns -> headings
FRONT_COLUMNS = {"trial_id": "trial", "family": "family", "origin": "origin", "val_acc": "val acc",
                 "n_params": "parameters", "mflops": "MFLOPs", "latency_ms": "latency ms (batch 1)",
                 "images_per_s": "images/s (batch 256)", "model_kb": "size kB"}


def front_md(table: pd.DataFrame) -> str:
    """The leaderboard's Pareto trials (its pareto column), cheapest first."""
    on = table[table["pareto"].astype(str).str.lower() == "true"].sort_values("latency_ms")
    shown = on[[c for c in FRONT_COLUMNS if c in on]].rename(columns=FRONT_COLUMNS)
    formats = {"val acc": "{:.4f}", "parameters": "{:,.0f}", "MFLOPs": "{:.2f}", "latency ms (batch 1)": "{:.3f}",
               "images/s (batch 256)": "{:,.0f}", "size kB": "{:,.0f}"}
    for column, form in formats.items():
        if column in shown:
            shown[column] = [form.format(v) if pd.notna(v) else "-" for v in shown[column]]
    if "origin" in shown:
        shown["origin"] = [v if isinstance(v, str) and v else "-" for v in shown["origin"]]
    return _md_table(shown)


def _front_section(doc: ReportWriter, meta: dict, table: pd.DataFrame) -> None:
    """The trade the users ask about: val_acc against CPU latency and against parameters."""
    if "latency_ms" not in table or pd.to_numeric(table["latency_ms"], errors="coerce").isna().all():
        doc.add("## Accuracy against cost", "No cost figures: this search ran before trials measured their CPU "
                                            "latency (search again to see the front).")
        return
    costs = [OBJECTIVES["latency"], OBJECTIVES["params"]]
    fronts = [pareto.front(table, (cost,)) for cost in costs]
    objective = meta["objective"]
    threads = pd.to_numeric(table.get("cost_threads"), errors="coerce").dropna()
    cpu = next((c for c in table.get("cost_cpu", pd.Series(dtype=str)).dropna() if c), "this CPU")
    where = f"{int(threads.iloc[0])} thread(s) of {cpu}" if len(threads) else cpu
    doc.add("## Accuracy against cost",
            f"Objective `{objective}`. Latency: median milliseconds per image at batch 1, measured once per trial "
            f"before training (fp32, eval mode) on {where}; parameters: trainable ones. A trial is on the front "
            f"when no other is at least as accurate and as cheap, and better in one. The leaderboard's `pareto` "
            f"column marks the front of the search's objective (latency when it traded none); "
            f"`digitsearch best --pick smallest-within:0.3` (or `fastest`, ...) chooses from it.",
            doc.figure(report_plots.pareto_fronts(table, costs, fronts, pareto.usable(table)), "pareto_front.png",
                       "val_acc against latency and parameters, the Pareto front joined"),
            front_md(table))


def _retrain_sections(doc: ReportWriter, folder: Path) -> None:
    final = final_dir(folder)
    if not (final / METRICS_FILE).is_file():
        doc.add("## The retrained model", "Not retrained yet: `digitsearch best --retrain`, then report again.")
        return
    metrics = experiments.read_json(final / METRICS_FILE)
    members = metrics.get("members", [])
    if len(members) > 1:
        parts = [f"An ensemble of {len(members)} trials' configs, each retrained on {metrics['train_examples']:,} "
                 f"examples (train + validation); their averaged probabilities made the predictions:",
                 members_md(members)]
    else:
        parts = [f"Trial {metrics['trial_id']} ({metrics['family']}) retrained for {metrics['epochs']} epochs on "
                 f"{metrics['train_examples']:,} examples (train + validation)."]
    if "test_accuracy_no_tta" in metrics:
        parts.append(f"Test-time augmentation ({len(metrics.get('tta') or [])} views): "
                     f"{metrics['test_accuracy_no_tta']:.4f} without it, {metrics['test_accuracy']:.4f} with it.")
    if "test_sequences" in metrics:
        parts.append(f"Test exact-match accuracy **{metrics['test_accuracy']:.4f}** on {metrics['test_sequences']:,} "
                     f"held-out sequences (per symbol {metrics['test_symbol_accuracy']:.4f}).")
    elif "test_accuracy" in metrics:
        parts.append(f"Test accuracy **{metrics['test_accuracy']:.4f}** on {metrics['test_images']:,} held-out images.")
        per_class = pd.DataFrame(metrics["per_class"]).T.reset_index(names="class")
        for column in ("precision", "recall", "f1"):
            per_class[column] = per_class[column].map(lambda v: f"{v:.3f}")
        per_class["support"] = per_class["support"].astype(int)
        parts.append(_md_table(per_class))
    matrix_csv = final / "confusion_matrix.csv"
    if matrix_csv.is_file():
        matrix = pd.read_csv(matrix_csv, index_col=0)
        fig = plots.confusion_matrix_figure(matrix.to_numpy(dtype=np.int64), [str(c) for c in matrix.columns])
        parts.append(doc.figure(fig, "confusion_matrix.png", "confusion matrix of the retrained model"))
    if metrics.get("history"):
        parts.append(doc.figure(plots.curves_figure(metrics["history"]), "retrain_curves.png", "retrain curves"))
    doc.add("## The retrained model", *parts)


def members_md(members: list[dict]) -> str:
    """One row per ensemble member: its trial, family, seed (a config may come twice, reseeded), epochs,
    val_acc in the search, test accuracy alone."""
    return _md_table(pd.DataFrame([{
        "member": k, "trial": m["trial_id"], "family": m["family"], "seed": m.get("seed", "-"), "epochs": m["epochs"],
        "val acc in search": f"{m['val_acc_in_search']:.4f}" if isinstance(m.get("val_acc_in_search"), float) else "-",
        "test accuracy alone": f"{m['test_accuracy']:.4f}" if "test_accuracy" in m else "-",
    } for k, m in enumerate(members, start=1)]))


def retrained_md(folder: Path, table: pd.DataFrame) -> str | None:
    """The searched best beside every trial retrained with `best --trial` (e.g. the hand-made
    starting points), on the same data: parameters, seconds per epoch, test accuracy."""
    finals = list(folder.glob(f"{FINAL_DIR}-*/{METRICS_FILE}"))
    best = final_dir(folder) / METRICS_FILE
    if not finals or not best.is_file():
        return None
    params = table.set_index("trial_id")["n_params"]
    try:
        starts = trials.starting_point_trials(folder)
    except (UserError, OSError):  # the space file has moved: rows are named by trial only
        starts = {}
    # the starting points in the space's order, then any other trial retrained with --trial
    finals.sort(key=lambda p: (starts.get(p.parent.name.removeprefix(f"{FINAL_DIR}-"), len(starts) + 1), p.parent.name))
    rows = []
    for path in [best, *finals]:
        m = experiments.read_json(path)
        seconds = [epoch["epoch_seconds"] for epoch in m.get("history", [])]
        start = f"starting point {starts[m['trial_id']]}" if m["trial_id"] in starts else f"trial {m['trial_id']}"
        rows.append({
            "model": ("searched best" + (f" ({start})" if m["trial_id"] in starts else "")) if path == best
            else start,
            "trial": m["trial_id"], "family": m["family"],
            "parameters": f"{int(params.get(m['trial_id'], 0)):,}", "epochs": m["epochs"],
            "s/epoch": f"{sum(seconds) / len(seconds):.1f}" if seconds else "-",
            "test accuracy": f"{m['test_accuracy']:.4f}" if "test_accuracy" in m else "-",
        })
    return _md_table(pd.DataFrame(rows))


def _sizes_md(sizes: dict) -> str:
    """54,000 train (trials on a stratified 12,000 of them) / 6,000 validation / 10,000 test examples"""
    part = sizes.get("trial_train", sizes["train"])
    subset = f" (trials on a stratified {part:,} of them)" if part < sizes["train"] else ""
    return f"{sizes['train']:,} train{subset} / {sizes['val']:,} validation / {sizes['test']:,} test examples"


def _trials_md(meta: dict, ran: int) -> str:
    """'12 trials', or for a search the time limit alone ended: '47 trials in a 23m57s time limit'."""
    if meta.get("time_limit") and meta["trials"] is None:
        return f"{ran} trials in a {shown(meta['time_limit'])} time limit"
    return f"{meta['trials']} trials"


def plan_md(folder: Path) -> list[str]:
    """Why the search stopped when it did and what it added over its best starting point at equal
    epochs (search_plan.json, search.planner), as the run log said it; nothing for a search
    that predates it."""
    path = folder / SEARCH_PLAN_FILE
    if not path.is_file():
        return []
    said = json.loads(path.read_text())
    return [f"**Why the search stopped:** {said['why']}.", f"**What the search added:** {said['added']}."]


def write(results: Path, name: str | None, echo: Callable[[str], None] = print) -> Path:
    folder = experiments.resolve(results, name)
    meta = experiments.read_meta(folder)
    table = with_origin(folder, leaderboard.read(folder))
    configs = trials.configs(folder, table["trial_id"])
    out = folder / REPORT_DIR
    out.mkdir(exist_ok=True)
    doc = ReportWriter(out)
    doc.add(f"# Search report: {folder.name}",
            f"Space `{meta['space']}` ({', '.join(meta['families'])}) on dataset "
            f"`{meta['dataset_name']}`: {_sizes_md(meta['sizes'])}; {_trials_md(meta, len(table))}, up to "
            f"{meta['max_epochs']} epochs each ({meta['search']} + {meta['scheduler']}, seed {meta['seed']}). "
            f"Written by `digitsearch report --name {folder.name}`.", *filter(None, [origin_md(table, configs)]),
            *plan_md(folder))
    _search_sections(doc, folder, meta, table, configs)
    _retrain_sections(doc, folder)
    compared = retrained_md(folder, table)
    if compared:
        doc.add("## Retrained models compared",
                "The searched best and the trials retrained beside it by "
                "`digitsearch best --retrain --starting-points` "
                "(the space's hand-made nets) or `--trial ID`: each on train + validation, tested on the same held-out "
                "images; s/epoch is the retrain's.", compared)
    path = doc.save()
    echo(f"wrote {path} and {len(doc.pngs)} PNGs: {', '.join(doc.pngs)}")
    return path
