"""A new search: the space and the data checked against each other, experiment.json written,
one Tune round (Optuna's define-by-run search + ASHA), then leaderboard.csv and best.json.

The dataset is loaded once here on the driver and put in the object store once
(tune.with_parameters); trials fill every CPU slot (max_concurrent_trials, which in
Ray 2.60 also lifts OptunaSearch's one-pending-trial limit, Ray issue 46965).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from digitsearch import spaces
from digitsearch.core.timebudget import Deadline
from digitsearch.data import fingerprint
from digitsearch.search import feasible, preflight, rounds, session, validate, warm_start
from digitsearch.search.feasible import Budget
from digitsearch.search.request import SearchRequest, resolve_limits
from digitsearch.search.rounds import SearchOutcome
from digitsearch.spaces import portfolio
from digitsearch.store import experiments, record, trials
from digitsearch.store.layout import FIRST_ROUND, RUNTIME_KEYS, tune_root


def run(req: SearchRequest, deadline: Deadline | None, echo: Callable[[str], None],
        earliest_stop: Deadline | None = None) -> SearchOutcome:
    chatter = (lambda line: None) if req.quiet else echo
    req, space, bundle, points, warm = _prepare(req, echo, chatter)
    # Ray up: a trial the machine cannot hold is refused here, and a trial's GPU share settled
    req = session.check_resources(req, space.families, chatter)
    folder = experiments.create(req.results, req.name or experiments.default_name(space.name, req.dataset))
    meta = describe_run(req, space, bundle, folder.resolve())
    meta["starting_points"] = points  # the portfolio's and the warm start's included: --resume reads them
    meta["space_fingerprint"] = trials.experiment_space(meta).fingerprint()  # as --resume will read it
    experiments.write_meta(folder, meta)
    if warm is not None:
        _add_warm_trials(req, warm, space, folder.resolve(), meta, chatter)
    ledger, progress = rounds.watchers(req, folder.resolve(), chatter, deadline)
    rounds.tune_round(req, space, bundle, meta, ledger, progress, chatter, deadline=deadline,
                      earliest_stop=earliest_stop)
    return rounds.finish(req, space, meta, ledger, echo, chatter)


def _prepare(req: SearchRequest, echo, chatter):
    """The request with its budget settled, the space (with --set and the configs that go first)
    and the data, checked against each other; and the starting points as experiment.json keeps them."""
    space = spaces.load(req.space)
    if req.overrides:
        space = space.fixed(req.overrides)
    req = resolve_limits(req, space)
    validate.check_space(space, req.overrides, req.seed)  # a typo costs a line before any data is read
    warm = warm_start.read(req.warm_start, req.results, space) if req.warm_start else None
    bundle = rounds.load_data(req)
    space = _seeded(req, space, warm, bundle, chatter)
    configs = validate.check_space(space, req.overrides, req.seed)  # the points that go first, filled in
    if warm is not None and warm_start.same_data(warm, fingerprint.of(bundle)):
        space, skipped = warm_start.untried(space, warm)
        if skipped:
            chatter(f"warm start: {skipped} starting points {warm.folder.name} trained on the same data are not "
                    "trained again")
    points = [dict(p) for p in space.starting_points]
    # bad pairings fail here, not in every trial
    space = preflight.check(space, bundle.task, bundle.name, echo, bundle.mirror_safe, note=chatter)
    validate.check_builds(space, configs, bundle)
    for note in bundle.notes:
        chatter(f"data: {note}")
    unit, classes = ("sequences", f"{bundle.num_classes} symbols") if bundle.task == "sequence" else \
        ("images", f"{bundle.num_classes} classes")
    tests = len(bundle.test) if bundle.test else 0
    chatter(f"data: {len(bundle.train)} train / {len(bundle.val)} val / {tests} test {unit}, {classes}")
    return req, space, bundle, points, warm


def _seeded(req: SearchRequest, space, warm, bundle, chatter):
    """The space whose first starting points are the warm start's best configs, then the
    portfolio's that can train on these data (in the order for them), then its own."""
    first: list[dict] = []
    if warm is not None:
        first += warm.points
        left_out = f"; left out (not searched by '{space.name}'): {', '.join(warm.dropped)}" if warm.dropped else ""
        chatter(f"warm start: the {len(warm.points)} best configs of {warm.folder.name} go first{left_out}")
    budget = Budget(req.max_params, req.max_mflops, req.family_limits)
    learned = portfolio.points_for(req.portfolio, space, feasible.trains_within(budget, bundle))
    first += learned
    if learned:
        chatter(f"portfolio: {len(learned)} configs learned from earlier searches go first "
                f"({'the built-in portfolio' if req.portfolio == portfolio.BUILTIN else req.portfolio})")
    return portfolio.seeded(space, first) if first else space


def _add_warm_trials(req: SearchRequest, warm, space, folder: Path, meta: dict, chatter) -> None:
    if not warm_start.same_data(warm, meta["data_fingerprint"]):
        chatter(f"warm start: the data differ from {warm.folder.name}'s, so its trials' values do not carry over: "
                "only its best configs go first")
        return
    _, modes = req.study_metrics
    directions = ["maximize" if m == "max" else "minimize" for m in ([modes] if isinstance(modes, str) else modes)]
    added = warm_start.add_finished_trials(warm, space, folder, meta["study_name"], directions)
    chatter(f"warm start: {added} finished trials of {warm.folder.name} added to the study (the same data)")


def describe_run(req: SearchRequest, space, bundle, folder: Path) -> dict:
    """experiment.json as a new search writes it: the request, the data, where Tune's rounds go,
    and the experiment's identity: the study's name and the data's fingerprint (what
    `best --retrain` and `--resume` compare the data they load again with)."""
    def absolute(path):
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    return {
        **{k: v for k, v in asdict(req).items() if k not in RUNTIME_KEYS},
        "schema_version": record.SCHEMA_VERSION, "results": str(req.results), "name": folder.name,
        "created": time.time(), "study_name": folder.name, "family": space.family, "families": list(space.families),
        "space_path": str(space.path), "task": bundle.task, "base": absolute(req.base),
        "dataset": absolute(req.dataset), "test": absolute(req.test), "data_dir": absolute(req.data_dir),
        "dataset_name": bundle.name, "dataset_notes": bundle.notes, "class_names": bundle.class_names,
        "labels": bundle.user_labels,
        "sizes": {"train": len(bundle.train), "val": len(bundle.val), "test": len(bundle.test) if bundle.test else 0,
                  "trial_train": min(len(bundle.train), req.trial_examples or len(bundle.train))},
        "data_fingerprint": fingerprint.of(bundle),
        "status": "running", "tune_root": tune_root(folder, req.storage),
        "rounds": [{"dir": FIRST_ROUND, "trials": req.trials}],
    }
