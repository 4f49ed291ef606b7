"""`digitsearch tune`: a search (or, with --resume, the rest of one). The options are the
SearchRequest's fields; their defaults are read from it, so they are written once."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from digitsearch.cli.app import RESULTS, Results, app
from digitsearch.errors import UserError
from digitsearch.search.request import (
    RUNTIME_FIELDS,
    TIME_LIMITED_SEARCH_EXAMPLES,
    Scheduler,
    Searcher,
    SearchRequest,
    refuse_on_resume,
)

DEFAULT = SearchRequest()
# with --retrain under --time-limit: the search ends between these shares of the limit, where the
# planner (search/planner.py) sees more search gain less than more final training; the retrain
# gets the rest. The least lets the starting points and a first batch of sampled configs be
# measured; the most keeps the final training at least as long as a 6-epoch-trial search script
# gives its own (issue 28).
SEARCH_LEAST, SEARCH_MOST = 0.2, 0.6

SPACE = "Built-in space name (see `digitsearch spaces`) or a YAML file."
DATASET = "Registered name (see `digitsearch datasets`), a folder of IDX files, or a Kaggle train.csv."
BASE = ("For --dataset numbers: the digit set the numbers are built from (a registered name or IDX folder) "
        "(default: digits).")
TEST = "Kaggle test.csv (pixels only) whose predictions `best --retrain` exports."
DATA_DIR = "Where to look for IDX files of registered datasets (also $DIGITSEARCH_DATA)."
VAL_FRACTION = "Stratified share of the training data held out for validation."
TRIALS = "Number of configurations to try (default 12; with --time-limit, as many as fit)."
TIME_LIMIT = ("Wall-clock limit of the whole command, e.g. 90s, 30m, 1h30m: no trial starts that cannot reach its "
              "first rung in time, running trials stop at an epoch boundary with their results kept; with --retrain "
              "the retrain's time is reserved from it.")
RETRAIN = ("Then retrain the best (or, with --ensemble K, the top K) on train+val, test and export, as "
           "`digitsearch best --retrain` does; under --time-limit the search stops between 20 % and 60 % of the "
           "limit, once more search gains less than more final training, and the retrain gets the rest.")
ENSEMBLE = "With --retrain: average the top K distinct configs (fewer when the time limit does not fit K)."
TTA = "With --retrain: average the predictions over small shifts (and flips where the data allow them)."
MAX_EPOCHS = "Epochs a trial may train at most."
SEARCH_EXAMPLES = ("Trials train on a stratified subset of this many training examples (validation and the retrain "
                   f"use all); 0: all (default: all, or {TIME_LIMITED_SEARCH_EXAMPLES} under --time-limit).")
GRACE = "ASHA: epochs every trial gets before it can be stopped; its rungs are at N, N*R, N*R^2, ... epochs."
REDUCTION = "ASHA: R, the rung-to-rung factor; the best 1/R of each rung go on."
SCHEDULER = "asha (early stopping) or fifo (every trial runs all epochs)."
SEARCH = "optuna (TPE, half the trials local steps from the best so far) or random."
CPUS = "CPUs per trial (also its torch threads); above 0."
GPUS = ("GPUs per trial; fractions pack several trials on one GPU (default: 0.25 where Ray has GPUs, 1 for "
        "transfer backbones, 0 without GPUs; 0 keeps trials on the CPUs).")
CONCURRENT = "Trials at once (default: as many as the CPUs/GPUs hold)."
MAX_PARAMS = ("Configs with more trainable parameters are recorded as over budget, not trained "
              "(default: the space's limits:, else 3000000).")
MAX_MFLOPS = ("Configs costing more MFLOPs per image (forward) are recorded as over budget, not trained "
              "(default: the space's limits:, else 40).")
MAX_LATENCY = ("Configs slower than this many milliseconds per image on a CPU (batch 1, the trial's threads; "
               "measured before training) are recorded as over budget, not trained.")
OBJECTIVE = ("What the study optimizes: accuracy, or accuracy against costs, comma-separated: "
             "accuracy,latency / accuracy,params / accuracy,mflops / accuracy,size (several allowed); "
             "ASHA still stops trials on val_acc. The leaderboard's pareto column marks the front.")
SEED = "Seeds the data splits, the searcher and the models."
NAME = "Experiment name (default: space-dataset-timestamp); an existing one is refused."
SET = "Fix a parameter of the space: NAME=VALUE (repeatable), e.g. --set transfer.init=scratch."
VERBOSE = "Show Ray's own logs and status tables."
QUIET = "Print only the outcome (best trial, or why there is none)."
ADDRESS = ("Run on an existing Ray cluster: auto, HOST:6379 or ray://HOST:10001 "
           "(default: a private local Ray).")
STORAGE = ("Where trials and checkpoints go: a folder every node sees, or a URI (s3://..., gs://...) "
           "(default: the experiment folder).")
RESUME = "Finish the search --name left unfinished (a killed driver, Ctrl-C); its stored settings are used."
PORTFOLIO = ("Configs learned from earlier searches that go first, before the space's own starting points: "
             "builtin (the built-in spaces only), none, or a portfolio file (`digitsearch portfolio build`).")
WARM_START = ("An earlier experiment (name or folder) to start from: its 3 best configs go first and, on the same "
              "data, its finished trials join the new study.")
ADD_TRIALS = "With --resume: then search this many more trials, continuing the same Optuna study."


def given_on_command_line(ctx: typer.Context) -> list[str]:
    """The options typed on this command line (not defaults), as the user wrote them (--max-epochs)."""
    # by the source's name: Typer 0.29 brings its own copy of click (typer._click), whose enum is not click's
    return [param.opts[0] for param in ctx.command.params
            if param.name and getattr(ctx.get_parameter_source(param.name), "name", None) == "COMMANDLINE"]


def refuse_fixed_options(ctx: typer.Context, request: SearchRequest) -> None:
    """On --resume, every option given that is not a runtime one (RUNTIME_FIELDS) is refused,
    before anything is loaded or Ray starts; the runtime ones apply to this run. The request's
    own checks (--resume needs --name) and the experiment's existence come first."""
    from digitsearch.store import experiments

    request.checked()
    experiments.resolve(request.results, request.name)
    changeable = {f"--{name.replace('_', '-')}" for name in RUNTIME_FIELDS}
    refuse_on_resume([option for option in given_on_command_line(ctx) if option not in changeable])


@app.command()
def tune(
    ctx: typer.Context,
    space: Annotated[str, typer.Option(help=SPACE)] = DEFAULT.space,
    dataset: Annotated[str, typer.Option(help=DATASET)] = DEFAULT.dataset,
    base: Annotated[Optional[str], typer.Option(help=BASE)] = DEFAULT.base,
    test: Annotated[Optional[str], typer.Option(help=TEST)] = DEFAULT.test,
    data_dir: Annotated[Optional[str], typer.Option(help=DATA_DIR)] = DEFAULT.data_dir,
    val_fraction: Annotated[float, typer.Option(help=VAL_FRACTION)] = DEFAULT.val_fraction,
    trials: Annotated[Optional[int], typer.Option(min=1, help=TRIALS)] = None,
    time_limit: Annotated[Optional[str], typer.Option(help=TIME_LIMIT)] = None,
    max_epochs: Annotated[int, typer.Option(min=1, help=MAX_EPOCHS)] = DEFAULT.max_epochs,
    search_examples: Annotated[Optional[int], typer.Option(min=0, help=SEARCH_EXAMPLES)] = DEFAULT.search_examples,
    grace_epochs: Annotated[int, typer.Option(min=1, help=GRACE)] = DEFAULT.grace_epochs,
    reduction_factor: Annotated[int, typer.Option(min=2, help=REDUCTION)] = DEFAULT.reduction_factor,
    scheduler: Annotated[Scheduler, typer.Option(help=SCHEDULER)] = Scheduler(DEFAULT.scheduler),
    search: Annotated[Searcher, typer.Option(help=SEARCH)] = Searcher(DEFAULT.search),
    cpus_per_trial: Annotated[float, typer.Option(help=CPUS)] = DEFAULT.cpus_per_trial,
    gpus_per_trial: Annotated[Optional[float], typer.Option(min=0, help=GPUS, show_default=False)] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1, help=CONCURRENT)] = DEFAULT.max_concurrent,
    max_params: Annotated[Optional[int], typer.Option(min=1, help=MAX_PARAMS)] = DEFAULT.max_params,
    max_mflops: Annotated[Optional[float], typer.Option(help=MAX_MFLOPS)] = DEFAULT.max_mflops,
    max_latency_ms: Annotated[Optional[float], typer.Option(help=MAX_LATENCY)] = DEFAULT.max_latency_ms,
    objective: Annotated[str, typer.Option(help=OBJECTIVE)] = DEFAULT.objective,
    seed: Annotated[int, typer.Option(help=SEED)] = DEFAULT.seed,
    name: Annotated[Optional[str], typer.Option(help=NAME)] = DEFAULT.name,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help=SET)] = None,
    results: Results = RESULTS,
    verbose: Annotated[bool, typer.Option(help=VERBOSE)] = False,
    quiet: Annotated[bool, typer.Option(help=QUIET)] = False,
    address: Annotated[Optional[str], typer.Option(help=ADDRESS)] = None,
    storage: Annotated[Optional[str], typer.Option(help=STORAGE)] = None,
    resume: Annotated[bool, typer.Option(help=RESUME)] = False,
    add_trials: Annotated[int, typer.Option(min=0, help=ADD_TRIALS)] = 0,
    portfolio: Annotated[str, typer.Option(help=PORTFOLIO)] = DEFAULT.portfolio,
    warm_start: Annotated[Optional[str], typer.Option(help=WARM_START)] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help=RETRAIN)] = False,
    ensemble: Annotated[int, typer.Option(min=1, help=ENSEMBLE)] = 1,
    tta: Annotated[bool, typer.Option("--tta", help=TTA)] = False,
):
    """Search a space with Optuna (TPE) and ASHA; writes results/<name>/ with leaderboard.csv and best.json."""
    from digitsearch.search.request import parse_overrides
    from digitsearch.search.runner import run_search

    whole, search_limit, earliest = _time_limits(time_limit, retrain, resume, ensemble, tta)
    request = SearchRequest(
        space=space, dataset=dataset, base=base, test=test, overrides=parse_overrides(set_ or []),
        data_dir=data_dir, val_fraction=val_fraction, trials=trials, max_epochs=max_epochs,
        search_examples=search_examples, grace_epochs=grace_epochs, reduction_factor=reduction_factor,
        scheduler=scheduler.value, search=search.value, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
        max_concurrent=max_concurrent, max_params=max_params, max_mflops=max_mflops, seed=seed, name=name,
        max_latency_ms=max_latency_ms, objective=objective, portfolio=portfolio, warm_start=warm_start,
        results=results, verbose=verbose, quiet=quiet, address=address, storage=storage, resume=resume,
        add_trials=add_trials, time_limit=search_limit)
    if resume:
        refuse_fixed_options(ctx, request)
    outcome = run_search(request, echo=typer.echo, earliest_stop_s=earliest)
    if outcome.interrupted:
        raise typer.Exit(130)  # what finished is written; the exit code still says it was cut short
    if retrain:
        _retrain(outcome.folder, ensemble, tta, whole)


def _retrain(folder, ensemble: int, tta: bool, whole) -> None:
    """tune --retrain: Ray down first (its processes would share the CPU), then `best --retrain`."""
    from digitsearch.cli.best import retrain_with_progress
    from digitsearch.search import session

    session.stop()
    try:
        retrain_with_progress(folder, None, ensemble=ensemble, tta=tta, time_limit_s=whole.left() if whole else None)
    except UserError as err:  # the search is done and written: say where it is and how to retrain it
        raise UserError(f"{err}; the search's results are kept in {folder} "
                        f"(`digitsearch best --name {folder.name} --retrain` retrains without a limit)") from None


def _time_limits(time_limit: str | None, retrain: bool, resume: bool, ensemble: int, tta: bool):
    """(the whole command's Deadline, the most the search may take in seconds, the least before the
    planner may end it or None), or (None, None, None) without a limit; the options that only go
    with --retrain are refused here, in one line."""
    from digitsearch.core.timebudget import Deadline, parse_duration, since_process_start

    if (ensemble > 1 or tta) and not retrain:
        raise UserError("--ensemble and --tta go with --retrain: they shape the retrained model")
    if retrain and resume:
        raise UserError("--retrain goes with a new search; after --resume run `digitsearch best --retrain`")
    if time_limit is None:
        return None, None, None
    limit = parse_duration(time_limit)
    whole = Deadline.after(limit - since_process_start())  # from when the command started
    if not retrain:  # nothing to hand the time to: the search takes all of it
        return whole, whole.left(), None
    return whole, whole.left() - limit * (1 - SEARCH_MOST), max(0.0, whole.left() - limit * (1 - SEARCH_LEAST))
