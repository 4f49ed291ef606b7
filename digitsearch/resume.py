"""`tune --name N --resume [--add-trials K]`: finish a search a killed or interrupted driver
left, then optionally extend it.

What is kept: every trial that had finished (Tune's restored state, and finished.txt for
the count), the searcher's history (the Optuna study in optuna.db, and Ray's saved searcher
state for the trials in flight). An unfinished trial continues from its best-epoch
checkpoint, or starts again if it had none. `--add-trials K` runs a new round (tune-2/, ...)
whose TPE sampler reads the same stored study, so it continues where the search stopped.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Callable

from digitsearch import experiments, ray_session, spaces
from digitsearch.errors import UserError

# what the command line may change on --resume; everything else is the stored search's
RUNTIME_FIELDS = ("address", "verbose", "quiet", "resume", "add_trials", "results", "name")


def stored_request(req, meta: dict):
    """The original SearchRequest, from experiment.json, with this command's runtime choices."""
    from digitsearch.search import SearchRequest

    known = {f.name for f in fields(SearchRequest)} - set(RUNTIME_FIELDS)
    stored = {k: meta[k] for k in known if k in meta}
    stored["space"] = meta.get("space_path") or stored.get("space", "cnn")  # absolute: any cwd works
    stored["trials"] = sum(r["trials"] for r in experiments.rounds(meta))
    return SearchRequest(**stored, **{k: getattr(req, k) for k in RUNTIME_FIELDS})


def run(req, echo: Callable[[str], None]):
    from digitsearch import search

    ray_session.check_reachable(req.address)
    folder = experiments.resolve(req.results, req.name).resolve()
    meta = experiments.read_json(folder / experiments.EXPERIMENT_FILE)
    meta.setdefault("tune_root", str(folder))
    meta["rounds"] = experiments.rounds(meta)
    stored = stored_request(req, meta)
    chatter = (lambda line: None) if req.quiet else echo
    unfinished = meta.get("status") != "finished"
    if not unfinished and not req.add_trials:
        raise UserError(f"experiment {folder.name!r} already finished its {stored.trials} trials; "
                        f"pass --add-trials K to search K more")
    space = spaces.load(stored.space)
    if stored.overrides:
        space = space.fixed(stored.overrides)
    bundle = search.load_data(stored)
    progress = search.new_progress(stored, folder, chatter)
    if unfinished:
        chatter(f"resume: {progress.done} of {stored.trials} trials had finished; running the rest")
        _finish_round(stored, space, bundle, meta, progress, chatter)
        _fail_orphans(folder)
    if req.add_trials and progress.done >= stored.trials:
        meta["rounds"].append({"dir": f"{experiments.FIRST_ROUND}-{len(meta['rounds']) + 1}", "trials": req.add_trials})
        stored.trials += req.add_trials
        meta["trials"] = progress.total = stored.trials
        meta["status"] = "running"
        experiments.write_json(folder / experiments.EXPERIMENT_FILE, meta)
        chatter(f"resume: {req.add_trials} more trials, continuing the study in {folder / 'optuna.db'}")
        search.tune_round(stored, space, bundle, meta, progress, chatter)
    return search.finish(stored, space, meta, progress, echo, chatter)


def _finish_round(stored, space, bundle, meta: dict, progress, echo) -> None:
    from ray import tune

    from digitsearch import search

    path = experiments.round_path(meta, meta["rounds"][-1])
    # killed before Tune saved anything: nothing ran, so the round starts over
    restore = tune.Tuner.can_restore(path)
    search.tune_round(stored, space, bundle, meta, progress, echo, restore=restore)


def _fail_orphans(folder: Path) -> None:
    """A trial the searcher had asked Optuna for just before the driver died, but that Tune's
    last snapshot never saw, stays RUNNING in the study; once the restored round is done,
    every trial still RUNNING is such an orphan. Marked failed, it no longer counts for TPE's
    constant liar as a trial in flight."""
    import optuna

    storage = experiments.study_storage(folder)
    study = optuna.load_study(study_name=folder.name, storage=storage)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
