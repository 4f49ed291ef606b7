"""One round of a search: a Tuner (new, or restored after a killed driver) with its callbacks,
and what every round ends with: the status, the leaderboard over every round, best.json.

Shared by a new search (new_search) and `--resume` (resume); neither imports the other.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, NamedTuple

from digitsearch import data
from digitsearch.core.timebudget import Deadline, shown
from digitsearch.errors import UserError
from digitsearch.search import algorithms, session
from digitsearch.search.callbacks.ledger import Ledger
from digitsearch.search.callbacks.progress import SearchProgress
from digitsearch.search.deadline import wrap_up_seconds
from digitsearch.search.planner import SearchPlanner
from digitsearch.search.request import SearchRequest
from digitsearch.store import experiments, leaderboard
from digitsearch.store.layout import (
    BEST_FILE,
    LEADERBOARD_FILE,
    LEDGER_FILE,
    PARAMS_FILE,
    SEARCH_PLAN_FILE,
    is_uri,
    round_path,
    rounds,
)


class SearchOutcome(NamedTuple):
    folder: Path
    interrupted: bool  # stopped (Ctrl-C) before every trial finished; what finished is written


def load_data(req: SearchRequest) -> data.Bundle:
    return data.load(req.dataset, test=req.test, data_dir=req.data_dir, val_fraction=req.val_fraction,
                     seed=req.seed, base=req.base)


def watchers(req: SearchRequest, folder: Path, echo: Callable[[str], None],
             deadline: Deadline | None = None) -> tuple[Ledger, SearchProgress]:
    """The ledger (finished.txt, read back on --resume) and the printer that reads it: a live view
    on a terminal, plain lines through `echo` elsewhere and beside --verbose's Tune tables."""
    from digitsearch.search.callbacks.live import terminal_console

    ledger = Ledger(folder / LEDGER_FILE, req.max_epochs)
    console = None if req.verbose else terminal_console(echo)
    return ledger, SearchProgress(None if req.uncapped else req.trials, ledger, echo, deadline, console=console)


def for_trials(req: SearchRequest, bundle: data.Bundle, echo: Callable[[str], None]) -> data.Bundle:
    """The data the trials train on: `bundle`, or with --search-examples (by default under a time
    limit) a stratified part of its training split; validation is the same, so val_acc compares
    configs on the same images."""
    examples = req.trial_examples
    if examples is None or bundle.task != "image" or len(bundle.train) <= examples:
        return bundle
    part = bundle.with_train_subset(examples, req.seed)
    echo(part.notes[-1] + "; the retrain uses all of them")
    return part


def _trial_name(trial) -> str:
    # short folder names; the config is in each trial's params.json and the leaderboard
    return f"trial_{trial.trial_id}"


def _environment(meta: dict) -> None:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our SearchProgress replaces Tune's tables
    # our TrialBoard replaces Ray's TensorBoard logger (which drops conditional HParams);
    # Ray's CSV and JSON loggers are added back in tune_round
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if not is_uri(meta["tune_root"]):
        # Tune snapshots its state at most this often: a killed driver loses at most a second
        # of bookkeeping (a trial that ended within it runs its last epochs again on --resume,
        # counted once: search.reconcile)
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")


def tune_round(req, space, bundle, meta: dict, ledger: Ledger, progress: SearchProgress, echo,
               restore: bool = False, deadline: Deadline | None = None, earliest_stop: Deadline | None = None) -> None:
    """Run the experiment's last round: a new Tuner, or with `restore` Ray's restore of a
    round a killed or interrupted driver left unfinished. With `deadline` (--time-limit) the
    trials end by it, less the time the search needs to wrap up (search.deadline); with
    `earliest_stop` the planner may end the search from then on (search.planner). A new round
    ends by saying what the search added over its best starting point, and why it stopped."""
    _environment(meta)
    ray = session.start(req.address, req.verbose)
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from digitsearch.search.callbacks import faults
    from digitsearch.search.callbacks.board import TrialBoard
    from digitsearch.search.trainable import TrialRuntime, train_trial

    folder = req.results.resolve() / meta["name"]
    warning = session.storage_warning(meta["tune_root"], len(session.alive_nodes(ray)))
    if warning:
        echo(warning)
    resources = ray.cluster_resources()
    this_round = meta["rounds"][-1]
    slots = session.concurrency(req, resources.get("CPU", 1), resources.get("GPU", 0), this_round["trials"])
    trials_end = deadline.at - wrap_up_seconds(req.time_limit) if deadline else None
    runtime = TrialRuntime(family=space.family, max_epochs=req.max_epochs,
                           threads=max(1, int(req.cpus_per_trial)), seed=req.seed, max_params=req.max_params,
                           max_mflops=req.max_mflops, family_limits=req.family_limits,
                           max_latency_ms=req.max_latency_ms, deadline=trials_end,
                           fault=faults.trial_fault(), starting_points=space.starting_points,
                           stop_at_chance=req.scheduler != "fifo")
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, bundle=for_trials(req, bundle, echo), runtime=runtime),
        {"cpu": req.cpus_per_trial, "gpu": req.gpus_per_trial or 0},
    )
    # the ledger first: callbacks run in list order, and the printer reads the ledger's counts
    callbacks = [ledger, progress, TrialBoard(folder, space), CSVLoggerCallback(), JsonLoggerCallback(),
                 *faults.injected(ledger)]
    path = round_path(meta, this_round)
    how_many = f"{this_round['trials']} trials" if this_round["trials"] else \
        f"as many trials as fit in {shown(deadline.left())}" if deadline else "the trials"
    echo(f"search: {how_many} of space {space.name!r} ({req.search} + {req.scheduler}), "
         f"up to {req.max_epochs} epochs each, {slots} at a time -> {path}")
    first = len(meta["rounds"]) == 1
    planner = None if restore else SearchPlanner(
        earliest_stop.at if earliest_stop else None, len(bundle.val),
        space.points_to_evaluate() if first else [], req.max_epochs)
    if planner is not None:
        progress.intent = planner.intent  # the live view's "planner:" line
    if restore:
        tuner = _restored_tuner(path, trainable, callbacks, storage_filesystem(meta))
    else:
        tuner = _new_tuner(req, space, folder, meta, trainable, callbacks, slots, trials_end, bundle, planner)
    tuner.fit()
    if planner is not None:
        planner_said(planner, folder, ledger, req, echo)


def planner_said(planner: SearchPlanner, folder: Path, ledger: Ledger, req, echo) -> None:
    """The round's last words on the search itself, in the run log and search_plan.json (the report's)."""
    why = planner.why or ("its time ran out" if req.time_limit else f"it ran its {ledger.done} trials")
    added = planner.added()
    echo(f"search: stopped because {why}")
    echo(f"search: {added}")
    said = {"why": why, "added": added, "planner_stopped": planner.stopped}
    (folder / SEARCH_PLAN_FILE).write_text(json.dumps(said, indent=2) + "\n")


def storage_filesystem(meta: dict):
    """Tune's filesystem for the rounds: on a local disk one that writes each file whole (a
    driver killed mid-copy left a snapshot that could not be restored: search.whole_files);
    None (pyarrow's own, from the URI) for remote storage."""
    from digitsearch.search.whole_files import whole_file_storage

    return None if is_uri(meta["tune_root"]) else whole_file_storage()


RESUME_THROUGH_CLIENT = ("--resume cannot run through Ray Client (a ray:// address): run it on the cluster itself "
                         "(`--address auto` on its head node, or `digitsearch submit -- tune --name ... --resume`)")


def _restored_tuner(path: str, trainable, callbacks, storage_filesystem):
    """Ray's restore of an unfinished round, with this driver's callbacks in place of the
    pickled ones (the first driver's printer and ledger). Ray has no public way to swap them:
    its TunerInternal's run config is set directly, which exists only when the Tuner runs
    in this process (tests/test_ray_pins.py pins it). Under Ray Client the Tuner runs in an
    actor on the cluster, so --resume there is refused in one line."""
    import ray
    from ray import tune

    if ray.util.client.ray.is_connected():  # a Python API caller already connected through ray://
        raise UserError(RESUME_THROUGH_CLIENT)
    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                               storage_filesystem=storage_filesystem)
    tuner._local_tuner.get_run_config().callbacks = callbacks
    tuner._local_tuner.get_run_config().stop = None  # the first driver's planner: a resume finishes, unplanned
    return tuner


def _new_tuner(req, space, folder, meta, trainable, callbacks, slots, trials_end: float | None = None, bundle=None,
               planner: SearchPlanner | None = None):
    from ray import tune

    from digitsearch.search.deadline import DeadlineSearcher

    this_round = meta["rounds"][-1]
    first = len(meta["rounds"]) == 1  # the space's hand-made starting points go in the first round only
    searcher = algorithms.searcher(req, space, folder, meta, starting_points=first,
                                   round_trials=None if req.uncapped else this_round["trials"], bundle=bundle)
    if trials_end is not None:
        searcher = DeadlineSearcher(searcher, trials_end, req.grace_epochs, planner=planner)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=algorithms.scheduler(req, space.points_to_evaluate() if first else (),
                                           prior=None if first else _earlier_curves(folder)),
            # -1 (a time limit alone ends the search): Tune samples until the searcher stops
            num_samples=this_round["trials"] or -1, max_concurrent_trials=slots, reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=this_round["dir"], storage_path=meta["tune_root"], storage_filesystem=storage_filesystem(meta),
            verbose=2 if req.verbose else 0,
            callbacks=callbacks, stop=planner,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="val_acc", checkpoint_score_order="max"),
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )


def _earlier_curves(folder: Path) -> dict[str, dict[int, float]]:
    """The curves of the trials the experiment's earlier rounds ran, from its study: a later
    round's ASHA starts from the rungs they left (search.schedulers)."""
    from digitsearch.search.schedulers import ran_curves
    from digitsearch.store import study

    return ran_curves(study.load(folder))


def load_results(meta: dict, ended: set[str] = frozenset()) -> list:
    """Every round's Tune results (ray.tune.Result), read back from storage, in round order,
    with the ghosts among `ended` (the ledger's trials) read from their own folders."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    results = []
    for round_ in rounds(meta):
        path = round_path(meta, round_)
        try:
            found = list(ResultGrid(ExperimentAnalysis(path)))
        except (FileNotFoundError, ValueError):
            found = []  # a round killed before Tune wrote its first state
        results.extend(found + _ghosts(path, found, ended))
    for result in results:
        if not result.config and not is_uri(str(result.path)):
            # a trial that failed before its first report: its config is only in params.json
            params = Path(result.path) / PARAMS_FILE
            config = json.loads(params.read_text()) if params.is_file() else {}
            result.metrics = {**(result.metrics or {}), "config": config}
    return results


def _ghosts(path: str, found: list, ended: set[str]) -> list:
    """The results of the round's trials that ended (the ledger has them) but that Tune's state
    does not hold: a trial that started and ended within Tune's last snapshot interval before
    a killed driver (search.reconcile). Their folders, written as they ran, hold their results."""
    from ray.tune import Result

    known = {leaderboard.trial_row_id(result) for result in found}
    filesystem, folders = _trial_folders(path)
    ghosts = []
    for folder in folders:
        trial_id = folder.base_name.removeprefix("trial_")  # the folder _trial_name gave it
        if trial_id in ended and trial_id not in known:
            try:
                ghosts.append(Result.from_path(folder.path, storage_filesystem=filesystem))
            except RuntimeError:  # no result.json or progress.csv: nothing it measured survives
                continue
    return ghosts


def _trial_folders(path: str) -> tuple:
    """(the filesystem, the trial folders (pyarrow FileInfo) in a round's storage, a local path or a URI)."""
    import pyarrow.fs

    filesystem, base = pyarrow.fs.FileSystem.from_uri(path) if is_uri(path) else (pyarrow.fs.LocalFileSystem(), path)
    try:
        listing = filesystem.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True))
    except OSError:
        return filesystem, []
    return filesystem, sorted((info for info in listing
                               if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("trial_")),
                              key=lambda info: info.path)


def finish(req: SearchRequest, space, meta: dict, ledger: Ledger, echo, chatter) -> SearchOutcome:
    """Mark the experiment finished or interrupted, and write the leaderboard over every round."""
    from digitsearch.search.feasible import skipped_in  # imports torch: not at the command's start

    folder = req.results.resolve() / meta["name"]
    results = load_results(meta, ledger.finished)
    # under a time limit the search is done when no trial it started is left unfinished;
    # without one, when all its trials ended
    cut = any(leaderboard.trial_row_id(r) not in ledger.finished for r in results)
    interrupted = cut or (req.time_limit is None and ledger.done < req.trials)
    meta["status"] = "interrupted" if interrupted else "finished"
    experiments.write_meta(folder, meta)
    if interrupted:
        of = "" if req.uncapped else f" of {req.trials}"
        echo(f"interrupted after {ledger.done}{of} trials; writing what finished; "
             f"`digitsearch tune --name {folder.name} --resume` finishes it")
    elif req.time_limit is not None:
        chatter(f"time limit: {ledger.done} trials ran in a search given at most {shown(req.time_limit)}")
    if (skipped := skipped_in(folder)) is not None:
        chatter(skipped)  # configs the searcher skipped before training: no trials, no leaderboard rows
    _write_results(req, space, results, ledger.finished, folder, echo, chatter)
    return SearchOutcome(folder, interrupted)


def _write_results(req, space, results, finished: set[str], folder: Path, echo, chatter) -> None:
    table = leaderboard.build(results, req.max_epochs, finished, family=space.family,
                              starting_points=space.starting_points, steps=_steps(folder),
                              objective=req.objectives)
    table.to_csv(folder / LEADERBOARD_FILE, index=False)
    configs = leaderboard.configs_by_trial(results)
    best = leaderboard.best_trial(table, configs)
    chatter(f"\ntop {min(5, len(table))} of {len(table)} trials (all in {folder / LEADERBOARD_FILE}):")
    chatter(leaderboard.top_table(table, configs))
    if best is None:
        echo("no trial completed: nothing to retrain; see the leaderboard's status and note columns")
        return
    experiments.write_json(folder / BEST_FILE, {**best, "experiment": folder.name})
    chatter("")
    echo(f"best: {best['trial_id']} val_acc {best['val_acc']:.4f} at epoch {best['best_epoch']}; "
         f"next: digitsearch best --name {folder.name} --retrain")


def _steps(folder: Path) -> dict:
    """The searcher's local steps, from the study: a random search, or a study that cannot be
    read (a folder copied without optuna.db), has none."""
    from digitsearch.search.mutation import steps_in
    from digitsearch.store import study

    try:
        return steps_in(study.load(folder))
    except (UserError, OSError):
        return {}
