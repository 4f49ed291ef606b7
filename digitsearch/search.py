"""run_search(): Ray Tune's Tuner + Optuna's define-by-run search + ASHA, over one space.

The dataset is loaded once here on the driver and put in the object store once
(tune.with_parameters); trials fill every CPU slot (max_concurrent_trials, which in
Ray 2.60 also lifts OptunaSearch's one-pending-trial limit, Ray issue 46965).
"""
from __future__ import annotations

import logging
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from digitsearch import data, experiments, leaderboard, preflight, ray_session, spaces
from digitsearch.errors import UserError

SCHEDULERS = ("asha", "fifo")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
# a trial over either limit is recorded as over budget, not trained: one such trial could
# cost as much as a dozen ordinary ones on a CPU
DEFAULT_LIMITS = {"max_params": 3_000_000, "max_mflops": 40.0}
SEARCHERS = ("optuna", "random")


@dataclass
class SearchRequest:
    space: str = "cnn"
    dataset: str = "digits"
    base: str | None = None  # the digit set `--dataset numbers` builds its numbers from
    test: str | None = None
    data_dir: str | None = None
    val_fraction: float = 0.1
    trials: int = 12
    max_epochs: int = 15
    # ASHA's rungs are grace x reduction_factor^k epochs; 1 (ASHA's own default) lets a search
    # drop its weak configs after one epoch, which `digitsearch bench` measured to cost no best val_acc
    grace_epochs: int = 1
    # ASHA keeps the top 1/reduction_factor at each rung; 4 is the ASHA paper's eta. On MNIST-10k
    # 3 trained 0.38 of FIFO's epochs for the same best val_acc (`digitsearch bench`, 2026-11-25)
    reduction_factor: int = 4
    scheduler: str = "asha"
    search: str = "optuna"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_params: int | None = None  # None: the space's `limits:`, else DEFAULT_LIMITS
    max_mflops: float | None = None
    seed: int = 0
    name: str | None = None
    overrides: dict = field(default_factory=dict)  # --set name=value: parameters fixed as constants
    results: Path = field(default_factory=lambda: Path("results"))
    verbose: bool = False
    quiet: bool = False  # only the outcome: no data notes, no line per trial, no top table
    address: str | None = None  # an existing Ray cluster; None: a private local Ray
    storage: str | None = None  # where Tune keeps trials and checkpoints (a shared folder or a URI)
    resume: bool = False  # finish (or with add_trials, extend) the experiment `name`
    add_trials: int = 0

    def check(self) -> None:
        """Refuse a bad request before anything is loaded or written."""
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1 (got {self.trials})")
        if self.max_epochs < 1:
            raise UserError(f"--max-epochs must be at least 1 (got {self.max_epochs})")
        if not 1 <= self.grace_epochs <= self.max_epochs:
            raise UserError(f"--grace-epochs must be between 1 and --max-epochs ({self.max_epochs}), got {self.grace_epochs}")
        if self.reduction_factor < 2:
            raise UserError(f"--reduction-factor must be at least 2 (got {self.reduction_factor})")
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"--scheduler must be one of {', '.join(SCHEDULERS)} (got {self.scheduler!r})")
        if self.search not in SEARCHERS:
            raise UserError(f"--search must be one of {', '.join(SEARCHERS)} (got {self.search!r})")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise UserError("--cpus-per-trial must be above 0 and --gpus-per-trial at least 0")
        if (self.max_params is not None and self.max_params < 1) or (self.max_mflops is not None and self.max_mflops <= 0):
            raise UserError("--max-params and --max-mflops must be above 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UserError(f"--max-concurrent must be at least 1 (got {self.max_concurrent})")
        if self.quiet and self.verbose:
            raise UserError("--quiet and --verbose exclude each other; pick one")
        if self.add_trials < 0 or (self.add_trials and not self.resume):
            raise UserError("--add-trials K extends a finished search: use it with --resume --name NAME, K >= 1")
        if self.resume and not self.name:
            raise UserError("--resume needs --name NAME: the experiment to finish or extend")


def resolve_limits(req: SearchRequest, space: spaces.SearchSpace) -> None:
    """Budget: the command line's, else the space's `limits:`, else DEFAULT_LIMITS."""
    limits = {**DEFAULT_LIMITS, **space.limits}
    req.max_params = int(req.max_params if req.max_params is not None else limits["max_params"])
    req.max_mflops = float(req.max_mflops if req.max_mflops is not None else limits["max_mflops"])


def parse_overrides(items: list[str]) -> dict:
    """`--set name=value` items -> {name: value}; values read as YAML (3, 0.5, true, text)."""
    import yaml

    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set {item!r}: write NAME=VALUE, e.g. --set transfer.init=scratch")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            value = float(value)  # PyYAML reads 1e-3 (no dot) as text
        # a scalar as YAML reads it; anything else (a mapping from "a: b", an empty text) stays text
        overrides[name.strip()] = value if isinstance(value, (bool, int, float, str)) else text
    return overrides


def concurrency(req: SearchRequest, cpus: float, gpus: float, trials: int | None = None) -> int:
    """As many trials at once as the resources hold, unless the user asked for fewer."""
    slots = int(cpus // req.cpus_per_trial)
    if req.gpus_per_trial > 0:
        slots = min(slots, int(gpus // req.gpus_per_trial))
    if slots < 1:
        raise UserError(
            f"one trial needs {req.cpus_per_trial} CPUs and {req.gpus_per_trial} GPUs "
            f"but this machine has {cpus:g} CPUs and {gpus:g} GPUs; lower --cpus-per-trial/--gpus-per-trial"
        )
    return max(1, min(req.max_concurrent or slots, slots, trials or req.trials))


def _sampler(req: SearchRequest):
    import optuna

    if req.search == "random":
        return optuna.samplers.RandomSampler(seed=req.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True models each conditional branch on its own; constant_liar keeps
        # parallel trials from proposing the same point while others are still running
        return optuna.samplers.TPESampler(
            seed=req.seed, multivariate=True, group=True, constant_liar=True,
            n_startup_trials=max(4, min(10, req.trials // 3)),
        )


def _searcher(req: SearchRequest, space: spaces.SearchSpace, folder: Path, starting_points: bool = True):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = experiments.study_storage(folder)
    return OptunaSearch(
        # the study holds each trial's best epoch, as the leaderboard and the checkpoint do
        # (ASHA, below, compares the epoch's own val_acc at its rungs)
        space=space.define_by_run, metric="best_val_acc", mode="max",
        sampler=_sampler(req), storage=storage, study_name=folder.name,
        # the space's hand-made nets go first; a later round (--add-trials) continues the study
        points_to_evaluate=(space.points_to_evaluate() or None) if starting_points else None,
    )


def _scheduler(req: SearchRequest):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if req.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", metric="val_acc", mode="max", max_t=req.max_epochs,
                         grace_period=req.grace_epochs, reduction_factor=req.reduction_factor)


SYNC_LOGGER = "ray.tune.execution.experiment_state"
# Ray's atomic save writes `.<uuid4>-tmp-<name>` beside the file it replaces
_RAY_TMP_FILE = re.compile(r"/\.[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-tmp-")


class TransientSyncErrorFilter(logging.Filter):
    """Drops Ray's traceback for a state sync that raced the searcher's own save.

    A background thread copies Ray's driver state folder to the experiment folder while the
    searcher writes its state there as a `.<uuid>-tmp-` file and renames it; when the rename wins, the
    copy misses that file and Ray logs an error with a traceback. The next sync, and the forced
    one when the search ends, copy the state again, so nothing is lost and the user sees nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, FileNotFoundError) and _RAY_TMP_FILE.search(str(error)))


class TrialFailureFilter(logging.Filter):
    """Drops Ray's console traceback of a failed trial: our progress line names the error and
    where its traceback is (the trial's error.txt), and the leaderboard keeps the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("Trial task failed") or message.startswith("Trials did not complete"))


def _quiet_filter(logger_name: str, kind: type) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


def _start_ray(req: SearchRequest):
    ray = ray_session.connect(req.address, req.verbose)
    if not req.verbose:
        _quiet_filter(SYNC_LOGGER, TransientSyncErrorFilter)
        _quiet_filter("ray.tune.execution.tune_controller", TrialFailureFilter)
        _quiet_filter("ray.tune.tune", TrialFailureFilter)
    return ray


def _describe_run(req, space, bundle, folder) -> dict:
    def absolute(path):
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    return {
        **asdict(req), "results": str(req.results), "name": folder.name, "created": time.time(),
        "family": space.family, "families": list(space.families), "space_path": str(space.path),
        "task": bundle.task, "base": absolute(req.base),
        "dataset": absolute(req.dataset), "test": absolute(req.test), "data_dir": absolute(req.data_dir),
        "dataset_name": bundle.name, "dataset_notes": bundle.notes, "class_names": bundle.class_names,
        "sizes": {"train": len(bundle.train), "val": len(bundle.val), "test": len(bundle.test) if bundle.test else 0},
        "status": "running", "tune_root": experiments.tune_root(folder, req.storage),
        "rounds": [{"dir": experiments.FIRST_ROUND, "trials": req.trials}],
    }


class SearchOutcome(NamedTuple):
    folder: Path
    interrupted: bool  # stopped (Ctrl-C) before every trial finished; what finished is written


def run_search(req: SearchRequest, echo: Callable[[str], None] = print) -> SearchOutcome:
    """Search, then write leaderboard.csv and best.json. `echo` gets the outcome; with
    req.quiet nothing else (the progress lines and tables go to `chatter`).
    With req.resume: finish the named experiment, then run req.add_trials more."""
    req.check()
    if req.resume:
        from digitsearch import resume

        return resume.run(req, echo)
    ray_session.check_reachable(req.address)
    chatter = (lambda line: None) if req.quiet else echo
    space = spaces.load(req.space)
    if req.overrides:
        space = space.fixed(req.overrides)
    resolve_limits(req, space)
    bundle = load_data(req)
    space = preflight.check(space, bundle.task, bundle.name, echo)  # bad pairings fail here, not in every trial
    folder = experiments.create(req.results, req.name or experiments.default_name(space.name, req.dataset))
    folder = folder.resolve()
    meta = _describe_run(req, space, bundle, folder)
    experiments.write_json(folder / experiments.EXPERIMENT_FILE, meta)
    for note in bundle.notes:
        chatter(f"data: {note}")
    unit, classes = ("sequences", f"{bundle.num_classes} symbols") if bundle.task == "sequence" else \
        ("images", f"{bundle.num_classes} classes")
    chatter(f"data: {len(bundle.train)} train / {len(bundle.val)} val / {meta['sizes']['test']} test {unit}, {classes}")
    progress = new_progress(req, folder, chatter)
    tune_round(req, space, bundle, meta, progress, chatter)
    return finish(req, space, meta, progress, echo, chatter)


def load_data(req: SearchRequest):
    return data.load(req.dataset, test=req.test, data_dir=req.data_dir, val_fraction=req.val_fraction,
                     seed=req.seed, base=req.base)


def new_progress(req: SearchRequest, folder: Path, echo):
    from digitsearch.progress import SearchProgress

    return SearchProgress(req.trials, req.max_epochs, echo, ledger=folder / experiments.FINISHED_FILE)


def finish(req: SearchRequest, space, meta: dict, progress, echo, chatter) -> SearchOutcome:
    """Mark the experiment finished or interrupted, and write the leaderboard over every round."""
    folder = req.results.resolve() / meta["name"]
    interrupted = progress.done < req.trials
    meta["status"] = "interrupted" if interrupted else "finished"
    experiments.write_json(folder / experiments.EXPERIMENT_FILE, meta)
    if interrupted:
        echo(f"interrupted after {progress.done} of {req.trials} trials; writing what finished; "
             f"`digitsearch tune --name {folder.name} --resume` finishes it")
    results = experiments.load_rounds(meta)
    _write_results(req, space, results, progress.finished, folder, echo, chatter)
    return SearchOutcome(folder, interrupted)


def _trial_name(trial) -> str:
    # short folder names; the config is in each trial's params.json and the leaderboard
    return f"trial_{trial.trial_id}"


def tune_round(req, space, bundle, meta: dict, progress, echo, restore: bool = False) -> None:
    """Run the experiment's last round: a new Tuner, or with `restore` Ray's restore of a
    round a killed or interrupted driver left unfinished."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our SearchProgress replaces Tune's tables
    # our TrialBoard replaces Ray's TensorBoard logger (which drops conditional HParams);
    # Ray's CSV and JSON loggers are added back below
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if not experiments.is_uri(meta["tune_root"]):
        # Tune snapshots its state at most this often: a killed driver loses at most a second
        # of bookkeeping (a trial that ended within it runs its last epochs again on --resume)
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    ray = _start_ray(req)
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from digitsearch.board import TrialBoard  # these import Ray: only when a search runs
    from digitsearch.trainable import TrialRuntime, train_trial

    folder = req.results.resolve() / meta["name"]
    warning = ray_session.storage_warning(meta["tune_root"], len(ray_session.alive_nodes(ray)))
    if warning:
        echo(warning)
    resources = ray.cluster_resources()
    this_round = meta["rounds"][-1]
    slots = concurrency(req, resources.get("CPU", 1), resources.get("GPU", 0), this_round["trials"])
    runtime = TrialRuntime(family=space.family, max_epochs=req.max_epochs,
                           threads=max(1, int(req.cpus_per_trial)), seed=req.seed, max_params=req.max_params,
                           max_mflops=req.max_mflops)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, bundle=bundle, runtime=runtime),
        {"cpu": req.cpus_per_trial, "gpu": req.gpus_per_trial},
    )
    callbacks = [progress, TrialBoard(folder, space), CSVLoggerCallback(), JsonLoggerCallback()]
    path = experiments.round_path(meta, this_round)
    echo(f"search: {this_round['trials']} trials of space {space.name!r} ({req.search} + {req.scheduler}), "
         f"up to {req.max_epochs} epochs each, {slots} at a time -> {path}")
    if restore:
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True)
        # callbacks are not part of what Ray restores usefully (they were pickled with the
        # first driver's printer); this run's printer and board take their place
        tuner._local_tuner.get_run_config().callbacks = callbacks
    else:
        tuner = _new_tuner(req, space, folder, meta, trainable, callbacks, slots)
    tuner.fit()


def _new_tuner(req, space, folder, meta, trainable, callbacks, slots):
    from ray import tune

    this_round = meta["rounds"][-1]
    first = len(meta["rounds"]) == 1  # the space's hand-made starting points go in the first round only
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=_searcher(req, space, folder, starting_points=first), scheduler=_scheduler(req),
            num_samples=this_round["trials"], max_concurrent_trials=slots, reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=this_round["dir"], storage_path=meta["tune_root"], verbose=2 if req.verbose else 0,
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="val_acc", checkpoint_score_order="max"),
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )


def _write_results(req, space, results, finished: set[str], folder: Path, echo, chatter) -> None:
    table = leaderboard.build(results, req.max_epochs, finished, family=space.family)
    table.to_csv(folder / experiments.LEADERBOARD_FILE, index=False)
    configs = leaderboard.configs_by_trial(results)
    best = leaderboard.best_trial(table, configs)
    chatter(f"\ntop {min(5, len(table))} of {len(table)} trials (all in {folder / experiments.LEADERBOARD_FILE}):")
    chatter(leaderboard.top_table(table, configs))
    if best is None:
        echo("no trial completed: nothing to retrain; see the leaderboard's status and note columns")
        return
    experiments.write_json(folder / experiments.BEST_FILE, {**best, "experiment": folder.name})
    chatter("")
    echo(f"best: {best['trial_id']} val_acc {best['val_acc']:.4f} at epoch {best['best_epoch']}; "
         f"next: digitsearch best --name {folder.name} --retrain")
