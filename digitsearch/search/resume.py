"""`tune --name N --resume [--add-trials K]`: finish a search a killed or interrupted driver
left, then optionally extend it.

What is kept: every trial that had finished (Tune's restored state, and the ledger
finished.txt for the count), the searcher's history (the Optuna study in optuna.db, and Ray's
saved searcher state for the trials in flight). An unfinished trial continues from its
best-epoch checkpoint, or starts again if it had none. `--add-trials K` runs a new round
(tune-2/, ...) whose TPE sampler reads the same stored study, so it continues where the search stopped.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Callable

from digitsearch.errors import UserError
from digitsearch.search import rounds, session
from digitsearch.search.request import SearchRequest
from digitsearch.store import experiments, layout, study
from digitsearch.store.layout import FIRST_ROUND, STUDY_FILE, round_path
from digitsearch.store.trials import experiment_space, space_source

# what the command line may change on --resume; everything else is the stored search's
RUNTIME_FIELDS = ("address", "verbose", "quiet", "resume", "add_trials", "results", "name")


def stored_request(req: SearchRequest, meta: dict) -> SearchRequest:
    """The original SearchRequest, from experiment.json, with this command's runtime choices."""
    known = {f.name for f in fields(SearchRequest)} - set(RUNTIME_FIELDS)
    stored = {k: meta[k] for k in known if k in meta}
    stored["space"] = space_source(meta)
    stored["trials"] = sum(r["trials"] for r in layout.rounds(meta))
    return SearchRequest(**stored, **{k: getattr(req, k) for k in RUNTIME_FIELDS})


def run(req: SearchRequest, echo: Callable[[str], None]) -> rounds.SearchOutcome:
    session.check_reachable(req.address)
    folder = experiments.resolve(req.results, req.name).resolve()
    meta = experiments.read_meta(folder)
    meta.setdefault("tune_root", str(folder))
    meta["rounds"] = layout.rounds(meta)
    stored = stored_request(req, meta)
    chatter = (lambda line: None) if req.quiet else echo
    unfinished = meta.get("status") != "finished"
    if not unfinished and not req.add_trials:
        raise UserError(f"experiment {folder.name!r} already finished its {stored.trials} trials; "
                        f"pass --add-trials K to search K more")
    space = experiment_space(meta)
    bundle = rounds.load_data(stored)
    ledger, progress = rounds.watchers(stored, folder, chatter)
    if unfinished:
        chatter(f"resume: {ledger.done} of {stored.trials} trials had finished; running the rest")
        _finish_round(stored, space, bundle, meta, ledger, progress, chatter)
        fail_orphans(folder)
    if req.add_trials and ledger.done >= stored.trials:
        meta["rounds"].append({"dir": f"{FIRST_ROUND}-{len(meta['rounds']) + 1}", "trials": req.add_trials})
        stored.trials += req.add_trials
        meta["trials"] = progress.total = stored.trials
        meta["status"] = "running"
        experiments.write_meta(folder, meta)
        chatter(f"resume: {req.add_trials} more trials, continuing the study in {folder / STUDY_FILE}")
        rounds.tune_round(stored, space, bundle, meta, ledger, progress, chatter)
    return rounds.finish(stored, space, meta, ledger, echo, chatter)


def _finish_round(stored, space, bundle, meta: dict, ledger, progress, echo) -> None:
    from ray import tune

    # killed before Tune saved anything: nothing ran, so the round starts over
    restore = tune.Tuner.can_restore(round_path(meta, meta["rounds"][-1]))
    rounds.tune_round(stored, space, bundle, meta, ledger, progress, echo, restore=restore)


def fail_orphans(folder: Path) -> None:
    """A trial the searcher had asked Optuna for just before the driver died, but that Tune's
    last snapshot never saw, stays RUNNING in the study; once the restored round is done,
    every trial still RUNNING is such an orphan. Marked failed, it no longer counts for TPE's
    constant liar as a trial in flight."""
    import optuna

    loaded = study.load(folder)
    for trial in loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        loaded.tell(trial.number, state=optuna.trial.TrialState.FAIL)
