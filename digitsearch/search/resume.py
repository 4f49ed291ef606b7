"""`tune --name N --resume [--add-trials K]`: finish a search a killed or interrupted driver
left, then optionally extend it.

What is kept: every trial that had finished (Tune's restored state, and the ledger
finished.txt for the count), the searcher's history (the Optuna study in optuna.db, and Ray's
saved searcher state for the trials in flight). An unfinished trial continues from its
best-epoch checkpoint, or starts again if it had none. `--add-trials K` runs a new round
(tune-2/, ...) whose TPE sampler reads the same stored study, so it continues where the search stopped.
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

from digitsearch.data import fingerprint
from digitsearch.errors import UserError
from digitsearch.search import moved_round, rounds, session
from digitsearch.search.request import RUNTIME_FIELDS, SearchRequest
from digitsearch.store import experiments, layout, study
from digitsearch.store.layout import FIRST_ROUND, STUDY_FILE, round_path
from digitsearch.store.trials import experiment_space, space_changes, space_source


def stored_request(req: SearchRequest, meta: dict) -> SearchRequest:
    """The original SearchRequest, from experiment.json, with this command's runtime choices."""
    known = {f.name for f in fields(SearchRequest)} - set(RUNTIME_FIELDS)
    stored = {k: meta[k] for k in known if k in meta}
    stored["space"] = space_source(meta)
    counts = [r["trials"] for r in layout.rounds(meta)]
    stored["trials"] = None if None in counts else sum(counts)  # None: a time limit ended its first round
    return SearchRequest(**stored, **{k: getattr(req, k) for k in RUNTIME_FIELDS})


def run(req: SearchRequest, echo: Callable[[str], None]) -> rounds.SearchOutcome:
    if session.through_ray_client(req.address):
        # Ray's Tuner is restored in this process (rounds._restored_tuner); through Ray Client it
        # would run in an actor on the cluster: refused before any connection or file is touched
        raise UserError(rounds.RESUME_THROUGH_CLIENT)
    session.check_reachable(req.address)
    folder = experiments.resolve(req.results, req.name).resolve()
    meta = experiments.read_meta(folder)  # its paths where the folder is now: a renamed one resumes itself
    meta["rounds"] = layout.rounds(meta)
    stored = stored_request(req, meta)
    chatter = (lambda line: None) if req.quiet else echo
    unfinished = meta.get("status") != "finished"
    if not unfinished and not req.add_trials:
        raise UserError(f"experiment {folder.name!r} already finished its {_asked(stored)}; "
                        f"pass --add-trials K to search K more")
    edited = space_changes(meta)
    if edited:  # the study's history and the starting points would describe another space
        raise UserError(f"cannot resume {folder.name!r}: {edited}; put the file back as it was, or start a new "
                        f"search with another --name")
    space = experiment_space(meta)
    bundle = rounds.load_data(stored)
    changed = fingerprint.changes(meta["data_fingerprint"], fingerprint.of(bundle)) \
        if meta.get("data_fingerprint") else []
    if changed:  # the stored trials' val_acc would not compare with the new ones
        raise UserError(f"cannot resume {folder.name!r}: the data are not those its search saw: {'; '.join(changed)}; "
                        f"start a new search on them with another --name")
    ledger, progress = rounds.watchers(stored, folder, chatter)
    if unfinished:
        refuse_cut_short(meta, folder)
        chatter(f"resume: {ledger.done}{'' if stored.uncapped else f' of {stored.trials}'} trials had finished; "
                "running the rest")
        study.expect_at(folder)  # Ray's pickled searcher then writes this folder's study, not the old place's
        if not layout.is_uri(meta["tune_root"]):
            moved_round.repoint(Path(round_path(meta, meta["rounds"][-1])))  # its new trials go here too
        _finish_round(stored, space, bundle, meta, ledger, progress, chatter)
        fail_orphans(folder)
    if req.add_trials and (stored.uncapped or ledger.done >= stored.trials):
        meta["rounds"].append({"dir": f"{FIRST_ROUND}-{len(meta['rounds']) + 1}", "trials": req.add_trials})
        stored = replace(stored, trials=None if stored.uncapped else stored.trials + req.add_trials)
        meta["trials"] = progress.total = stored.trials
        meta["status"] = "running"
        experiments.write_meta(folder, meta)
        chatter(f"resume: {req.add_trials} more trials, continuing the study in {folder / STUDY_FILE}")
        rounds.tune_round(stored, space, bundle, meta, ledger, progress, chatter)
    return rounds.finish(stored, space, meta, ledger, echo, chatter)


def _asked(stored: SearchRequest) -> str:
    return "time-limited search" if stored.uncapped else f"{stored.trials} trials"


def refuse_cut_short(meta: dict, folder: Path) -> None:
    """Refuse, before Ray touches it, a round whose newest snapshot a kill cut short (an
    experiment written before search.whole_files): Ray's failed restore would write an empty
    snapshot after it, and the round's trials would be lost to Tune."""
    from digitsearch.search.whole_files import cut_short

    if layout.is_uri(meta["tune_root"]):
        return
    torn = cut_short(round_path(meta, meta["rounds"][-1]))
    if torn:
        raise UserError(f"cannot resume {folder.name!r}: Tune's snapshot {torn} was cut short when its driver was "
                        f"killed; move that session's files (the same date and time) out of the folder and resume "
                        f"again: Tune then restores the snapshot before it")


def _finish_round(stored, space, bundle, meta: dict, ledger, progress, echo) -> None:
    from ray import tune

    from digitsearch.search.replaced_checkpoints import restore_replaced
    from digitsearch.search.trainable import CHECKPOINT_FILE

    path = round_path(meta, meta["rounds"][-1])
    # killed before Tune saved anything: nothing ran, so the round starts over
    restore = tune.Tuner.can_restore(path)
    if restore:
        for trial_id in restore_replaced(path, rounds.storage_filesystem(meta), CHECKPOINT_FILE):
            echo(f"resume: {trial_id} had a better epoch just before the driver stopped; it goes on from there")
    rounds.tune_round(stored, space, bundle, meta, ledger, progress, echo, restore=restore)


def fail_orphans(folder: Path) -> None:
    """A trial the searcher had asked Optuna for just before the driver died, but that Tune's
    last snapshot never saw, stays RUNNING in the study. The restored searcher hands such
    orphans to the round's new trials (search.reconcile); once the round is done, every trial
    still RUNNING is one left over. Marked failed (and orphan: no leaderboard row), it no
    longer counts for TPE's constant liar as a trial in flight."""
    import optuna

    from digitsearch.search.reconcile import mark_orphan

    loaded = study.load(folder)
    for trial in loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        mark_orphan(loaded, trial)
