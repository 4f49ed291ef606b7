"""The `digitsearch` command: thin commands, each calls one library function and prints a summary.

Bad input ends in one line on stderr and exit code 2 (UserError); nothing is overwritten.
Heavy imports (Ray, torch) happen inside the commands that need them, so listing
spaces or datasets is instant.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

from digitsearch.errors import UserError
from digitsearch.search import SearchRequest

DEFAULT = SearchRequest()  # the one place tune's defaults are written

app = typer.Typer(
    help="Hyperparameter and architecture search for MNIST-like image classifiers (Ray Tune + Optuna + ASHA).",
    add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
)

Results = Annotated[Path, typer.Option(help="Folder holding the experiments.")]
Name = Annotated[Optional[str], typer.Option(help="Experiment name (default: the latest in --results).")]


def friendly(command):
    """Turn a UserError into one line and exit code 2."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return run


@app.command()
@friendly
def tune(
    space: Annotated[str, typer.Option(help="Built-in space name (see `digitsearch spaces`) or a YAML file.")] = DEFAULT.space,
    dataset: Annotated[str, typer.Option(help="Registered name (see `digitsearch datasets`), a folder of IDX files, or a Kaggle train.csv.")] = DEFAULT.dataset,
    base: Annotated[Optional[str], typer.Option(help="For --dataset numbers: the digit set the numbers are built from (a registered name or IDX folder) [default: digits].")] = DEFAULT.base,
    test: Annotated[Optional[str], typer.Option(help="Kaggle test.csv (pixels only) whose predictions `best --retrain` exports.")] = DEFAULT.test,
    data_dir: Annotated[Optional[str], typer.Option(help="Where to look for IDX files of registered datasets (also $DIGITSEARCH_DATA).")] = DEFAULT.data_dir,
    val_fraction: Annotated[float, typer.Option(help="Stratified share of the training data held out for validation.")] = DEFAULT.val_fraction,
    trials: Annotated[int, typer.Option(help="Number of configurations to try.")] = DEFAULT.trials,
    max_epochs: Annotated[int, typer.Option(help="Epochs a trial may train at most.")] = DEFAULT.max_epochs,
    grace_epochs: Annotated[int, typer.Option(help="ASHA: epochs every trial gets before it can be stopped; its rungs are at N, N*R, N*R^2, ... epochs.")] = DEFAULT.grace_epochs,
    reduction_factor: Annotated[int, typer.Option(help="ASHA: R, the rung-to-rung factor; the best 1/R of each rung go on.")] = DEFAULT.reduction_factor,
    scheduler: Annotated[str, typer.Option(help="asha (early stopping) or fifo (every trial runs all epochs).")] = DEFAULT.scheduler,
    search: Annotated[str, typer.Option(help="optuna (TPE) or random.")] = DEFAULT.search,
    cpus_per_trial: Annotated[float, typer.Option(help="CPUs per trial (also its torch threads).")] = DEFAULT.cpus_per_trial,
    gpus_per_trial: Annotated[float, typer.Option(help="GPUs per trial; fractions pack several trials on one GPU.")] = DEFAULT.gpus_per_trial,
    max_concurrent: Annotated[Optional[int], typer.Option(help="Trials at once (default: as many as the CPUs/GPUs hold).")] = DEFAULT.max_concurrent,
    max_params: Annotated[Optional[int], typer.Option(help="Configs with more trainable parameters are recorded as over budget, not trained [default: the space's limits:, else 3000000].")] = DEFAULT.max_params,
    max_mflops: Annotated[Optional[float], typer.Option(help="Configs costing more MFLOPs per image (forward) are recorded as over budget, not trained [default: the space's limits:, else 40].")] = DEFAULT.max_mflops,
    seed: Annotated[int, typer.Option(help="Seeds the data splits, the searcher and the models.")] = DEFAULT.seed,
    name: Annotated[Optional[str], typer.Option(help="Experiment name (default: space-dataset-timestamp); an existing one is refused.")] = DEFAULT.name,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Fix a parameter of the space: NAME=VALUE (repeatable), e.g. --set transfer.init=scratch.")] = None,
    results: Results = Path("results"),
    verbose: Annotated[bool, typer.Option(help="Show Ray's own logs and status tables.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print only the outcome (best trial, or why there is none).")] = False,
    address: Annotated[Optional[str], typer.Option(help="Run on an existing Ray cluster: auto, HOST:6379 or ray://HOST:10001 [default: a private local Ray].")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Where trials and checkpoints go: a folder every node sees, or a URI (s3://..., gs://...) [default: the experiment folder].")] = None,
    resume: Annotated[bool, typer.Option(help="Finish the search --name left unfinished (a killed driver, Ctrl-C); its stored settings are used.")] = False,
    add_trials: Annotated[int, typer.Option(help="With --resume: then search this many more trials, continuing the same Optuna study.")] = 0,
):
    """Search a space with Optuna (TPE) and ASHA; writes results/<name>/ with leaderboard.csv and best.json."""
    from digitsearch.search import parse_overrides, run_search

    request = SearchRequest(
        space=space, dataset=dataset, base=base, test=test, overrides=parse_overrides(set_ or []), data_dir=data_dir, val_fraction=val_fraction, trials=trials,
        max_epochs=max_epochs, grace_epochs=grace_epochs, reduction_factor=reduction_factor, scheduler=scheduler, search=search,
        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent,
        max_params=max_params, max_mflops=max_mflops, seed=seed, name=name, results=results, verbose=verbose,
        quiet=quiet, address=address, storage=storage, resume=resume, add_trials=add_trials,
    )
    if run_search(request, echo=lambda line: typer.echo(line)).interrupted:
        raise typer.Exit(130)  # what finished is written; the exit code still says it was cut short


@app.command()
@friendly
def best(
    name: Name = None,
    results: Results = Path("results"),
    retrain: Annotated[bool, typer.Option(help="Retrain the best config on train+val, test it, export model and predictions.")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="Retrain epochs (default: the best trial's best epoch).")] = None,
    export: Annotated[Optional[str], typer.Option(help="With --retrain, also write these beside model.pt, comma-separated: torchscript,onnx (onnx needs `pip install .[onnx]`).")] = None,
    trial: Annotated[Optional[str], typer.Option(help="Another trial of the leaderboard instead of the best, e.g. a hand-made starting point to compare; --retrain writes final-<trial>/.")] = None,
    starting_points: Annotated[bool, typer.Option("--starting-points", help="With --retrain: also retrain each trained starting point of the space (the hand-made nets) into final-<trial>/, to compare with the best in `digitsearch report`.")] = False,
):
    """Print the best config of an experiment; with --retrain, train it on all training data and export."""
    from digitsearch import experiments, export_formats

    formats = export_formats.parse(export)  # checked first: a typo must not cost a retrain
    if formats and not retrain:
        raise UserError("--export needs --retrain: the exported files are made from the retrained model")
    if starting_points and (trial or not retrain):
        raise UserError("--starting-points goes with --retrain (and without --trial): it retrains the best, then each starting point")
    export_formats.check_available(formats)
    folder = experiments.resolve(results, name)
    found = experiments.read_trial(folder, trial) if trial else experiments.read_best(folder)
    typer.echo(f"experiment {folder.name}: {'trial' if trial else 'best trial'} {found['trial_id']}, "
               f"val_acc {found['val_acc']:.4f} at epoch {found['best_epoch']} of {found['epochs']}, "
               f"{int(found['n_params'] or 0):,} parameters")
    for key, value in found["config"].items():
        typer.echo(f"  {key} = {value}")
    if retrain:
        _retrain(folder, epochs, formats, trial)
    if starting_points:
        _retrain_starting_points(folder, epochs, skip=found["trial_id"])


def _retrain_starting_points(folder: Path, epochs: int | None, skip: str) -> None:
    """Each trained starting point, on the best's budget (--epochs, else the best's epochs)."""
    import pandas as pd

    from digitsearch import experiments, leaderboard

    table = pd.read_csv(folder / experiments.LEADERBOARD_FILE, dtype={"trial_id": str}).set_index("trial_id")
    epochs = epochs or experiments.read_json(folder / "final" / "metrics.json")["epochs"]
    for trial_id, k in experiments.starting_point_trials(folder).items():
        status = table.loc[trial_id, "status"] if trial_id in table.index else "unknown"
        if trial_id == skip or status not in leaderboard.TRAINED_STATUSES:
            typer.echo(f"starting point {k} (trial {trial_id}): {'the best itself' if trial_id == skip else status}; not retrained")
            continue
        typer.echo(f"starting point {k} (trial {trial_id}): retraining for {epochs} epochs")
        _retrain(folder, epochs, (), trial_id)


def _retrain(folder: Path, epochs: int | None, formats: tuple[str, ...] = (), trial: str | None = None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from digitsearch import retrain

    with Progress(TextColumn("retrain"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task("retrain", total=None, info="loading data")

        def on_epoch(epoch: int, metrics: dict) -> None:
            bar.update(task, completed=epoch,
                       info=f"loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f} {metrics['images_per_second']:.0f} examples/s")

        def start(total: int) -> None:
            bar.update(task, total=total, info="training")

        metrics = retrain.run(folder, epochs, progress=on_epoch, on_start=start, exports=formats, trial=trial)
    out = retrain.output_dir(folder, trial)
    if "test_sequences" in metrics:
        typer.echo(f"test exact-match accuracy {metrics['test_accuracy']:.4f} on {metrics['test_sequences']} "
                   f"held-out sequences (per symbol {metrics['test_symbol_accuracy']:.4f})")
    elif "test_accuracy" in metrics:
        typer.echo(f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_images']} held-out images")
    typer.echo(f"wrote {out}/: " + ", ".join(sorted(p.name for p in out.iterdir())))


@app.command()
@friendly
def predict(
    model: Annotated[Path, typer.Option(help="A model.pt written by `best --retrain`.")],
    input: Annotated[str, typer.Option(help="A Kaggle-style CSV (label column optional), a folder of IDX files, or a folder of PNG/JPEG images of single digits.")],
    output: Annotated[Path, typer.Option(help="Where to write ImageId,Label (file,Label for a folder of images).")] = Path("submission.csv"),
    invert: Annotated[Optional[str], typer.Option(help="For a folder of images: auto|yes|no; auto inverts dark ink on light paper to MNIST's white on black [default: auto].")] = None,
    probs: Annotated[bool, typer.Option("--probs", help="Add one prob_<class> column per class (softmax).")] = False,
):
    """Predict labels for a CSV, IDX folder or folder of digit images with an exported model; writes Kaggle's ImageId,Label."""
    from digitsearch import predicting

    summary = predicting.run(model, input, output, invert=invert, probs=probs)
    typer.echo(summary)


@app.command()
@friendly
def spaces(show: Annotated[Optional[str], typer.Option(help="Print one space's parameters.")] = None):
    """List the built-in search spaces (or show one)."""
    from digitsearch import spaces as space_lib

    if show:
        loaded = space_lib.load(show)
        typer.echo(f"{loaded.name} ({loaded.path}): {'families' if len(loaded.families) > 1 else 'family'} "
                   f"{', '.join(loaded.families)}; {loaded.description}")
        if loaded.limits:
            typer.echo("  limits: " + ", ".join(f"{k} {v:,}" for k, v in loaded.limits.items()))
        for line in loaded.describe():
            typer.echo(f"  {line}")
        for number, point in enumerate(loaded.starting_points, start=1):
            typer.echo(f"  start {number}: " + ", ".join(f"{k}={v}" for k, v in point.items()))
        return
    for space_name, description in space_lib.list_spaces().items():
        typer.echo(f"{space_name:12s} {description}")


@app.command()
@friendly
def datasets(
    stats: Annotated[Optional[str], typer.Option(help="Print a dataset's class counts per split and write a bar chart PNG.")] = None,
    base: Annotated[Optional[str], typer.Option(help="With --stats numbers: the digit set the numbers are built from.")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Where to look for the files of registered datasets.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the bar chart [default: results/datasets/<name>-classes.png].")] = None,
):
    """List the registered datasets (a folder of IDX files or a Kaggle CSV also works), or show one's class balance."""
    from digitsearch import data

    if stats is None:
        for dataset_name, description in data.list_datasets().items():
            typer.echo(f"{dataset_name:14s} {description}")
        return
    from digitsearch.data import stats as stats_lib

    bundle = data.load(stats, base=base, data_dir=data_dir)
    counts = stats_lib.class_counts(bundle)
    typer.echo(counts.to_string())
    out = out or Path("results") / "datasets" / f"{bundle.name}-classes.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats_lib.write_bar_chart(bundle, out)
    typer.echo(f"wrote {out}")


@app.command()
@friendly
def models():
    """List the registered model families."""
    from digitsearch import models as model_lib

    for family in model_lib.list_models():
        typer.echo(f"{family:10s} {model_lib.describe(family)}")


@app.command()
@friendly
def report(name: Name = None, results: Results = Path("results")):
    """Write results/<name>/report/report.md with PNGs: leaderboard, curves, importances, families, the retrained model."""
    from digitsearch import report as report_lib

    report_lib.write(results, name, echo=typer.echo)


@app.command()
@friendly
def dashboard(
    name: Annotated[Optional[str], typer.Option(help="Show one experiment (default: every experiment in --results).")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 6006,
    results: Results = Path("results"),
):
    """Start TensorBoard on 127.0.0.1 over the experiments' trials and retrains; Ctrl-C stops it."""
    from digitsearch import dashboard as board

    board.serve(board.logdir(results, name), port, echo=typer.echo)


@app.command()
@friendly
def bench(
    quick: Annotated[bool, typer.Option(help="A smaller version of all four measurements, under 3 minutes.")] = False,
    out: Annotated[Path, typer.Option(help="Where the report goes: <out>/<host>-<date>.json and .md.")] = Path("results/bench"),
    mnist: Annotated[Optional[str], typer.Option(help="The MNIST-10k IDX folder for the full run [default: ../shared/data/mnist-10k, or $DIGITSEARCH_SHARED_DATA/mnist-10k].")] = None,
    smoke: Annotated[bool, typer.Option(hidden=True, help="The smallest run that measures all four (the test suite's).")] = False,
    profile: Annotated[bool, typer.Option("--profile", help="Then profile the start-up search with py-spy: <out>/<host>-<date>-startup-profile.md.")] = False,
):
    """Measure trial efficiency vs bare PyTorch, search overhead, ASHA+TPE vs FIFO+random, and start-up."""
    import os

    from digitsearch import bench as bench_lib

    shared = mnist or str(Path(os.environ.get("DIGITSEARCH_SHARED_DATA", "../shared/data")) / "mnist-10k")
    if not (quick or smoke) and not Path(shared).is_dir():
        raise UserError(f"the full bench trains on MNIST-10k, not found at {shared}; pass --mnist DIR or use --quick")
    bench_lib.run(quick or smoke, out, str(Path(shared).resolve()) if Path(shared).is_dir() else None, echo=typer.echo,
                  smoke=smoke, profile=profile)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly
def submit(
    ctx: typer.Context,
    address: Annotated[Optional[str], typer.Option(help="The head's dashboard URL (default: RAY_ADDRESS when it is an http URL, else http://127.0.0.1:8265).")] = None,
    wait: Annotated[bool, typer.Option(help="Stream the job's logs and exit with its status; --no-wait prints the job id and returns.")] = True,
    status: Annotated[Optional[str], typer.Option("--status", help="Print a submitted job's status.")] = None,
    logs: Annotated[Optional[str], typer.Option("--logs", help="Print a submitted job's logs so far.")] = None,
    stop: Annotated[Optional[str], typer.Option("--stop", help="Stop a submitted job.")] = None,
):
    """Run a digitsearch command on a Ray cluster as a Ray Job: `digitsearch submit -- tune --space cnn ...`."""
    from digitsearch import jobs

    asked = [(job_id, action) for job_id, action in ((status, jobs.status), (logs, jobs.logs), (stop, jobs.stop)) if job_id]
    if len(asked) > 1 or (asked and ctx.args):
        raise UserError("use one of --status/--logs/--stop JOB_ID, or a command after --, not both")
    if asked:
        job_id, action = asked[0]
        raise typer.Exit(action(address, job_id, typer.echo))
    raise typer.Exit(jobs.submit(address, list(ctx.args), typer.echo, wait=wait))


cluster_app = typer.Typer(
    help="Print a launch file that runs a search on a multi-node Ray cluster: an sbatch script (SLURM) or a RayJob (KubeRay). "
         "Put the search after `--`: `digitsearch cluster slurm --nodes 4 -- tune --space cnn`.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")
TUNE_AFTER_DASHES = {"allow_extra_args": True, "ignore_unknown_options": True}
Output = Annotated[Optional[Path], typer.Option(help="Write the file here instead of printing it (an existing file is refused).")]


def _emit(text: str, output: Optional[Path], submit: str) -> None:
    from digitsearch import cluster

    if output is None:
        typer.echo(text, nl=False)
        return
    cluster.write(text, output)
    typer.echo(f"wrote {output}; {submit.format(output)}")


@cluster_app.command(context_settings=TUNE_AFTER_DASHES, options_metavar="[OPTIONS] -- tune [TUNE OPTIONS]")
@friendly
def slurm(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(help="Machines; Ray's head runs on the first, a worker on each other one.")] = 2,
    cpus_per_node: Annotated[int, typer.Option(help="CPUs per machine, all given to Ray (sbatch --cpus-per-task).")] = 8,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs per machine, all given to Ray (sbatch --gpus-per-node; 0 asks for none).")] = 0,
    time: Annotated[str, typer.Option(help="Wall-clock limit, HH:MM.")] = "02:00",
    job_name: Annotated[str, typer.Option(help="sbatch --job-name.")] = "digitsearch",
    partition: Annotated[Optional[str], typer.Option(help="sbatch --partition (when left out: the cluster's default partition).")] = None,
    port: Annotated[int, typer.Option(help="Ray's GCS port on the head node.")] = 6379,
    dashboard_port: Annotated[int, typer.Option(help="Ray dashboard port on the head node.")] = 8265,
    setup: Annotated[Optional[list[str]], typer.Option(help="A shell line run before Ray starts, e.g. 'source .venv/bin/activate' (repeatable).")] = None,
    wait_timeout: Annotated[int, typer.Option(help="Seconds to wait for every node to join before giving up.")] = 300,
    output: Output = None,
):
    """Print an sbatch script: Ray on every node with srun, then `digitsearch tune ... --address` on the head."""
    from digitsearch import cluster

    text = cluster.slurm_script(ctx.args, nodes=nodes, cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node,
                                time=time, job_name=job_name, partition=partition, port=port,
                                dashboard_port=dashboard_port, setup=setup or [], wait_timeout=wait_timeout)
    _emit(text, output, "submit it with: sbatch {}")


@cluster_app.command(context_settings=TUNE_AFTER_DASHES, options_metavar="[OPTIONS] -- tune [TUNE OPTIONS]")
@friendly
def kuberay(
    ctx: typer.Context,
    image: Annotated[Optional[str], typer.Option(help="Container image with digitsearch and Ray (required).")] = None,
    workers: Annotated[int, typer.Option(help="Worker pods (replicas, minReplicas and maxReplicas).")] = 2,
    cpus_per_worker: Annotated[int, typer.Option(help="CPUs per worker pod (requests and limits).")] = 4,
    gpus_per_worker: Annotated[int, typer.Option(help="nvidia.com/gpu per worker pod (0 asks for none).")] = 0,
    memory: Annotated[str, typer.Option(help="Memory per worker pod, a Kubernetes quantity.")] = "8Gi",
    head_num_cpus: Annotated[int, typer.Option(help="CPUs Ray may schedule trials on in the head pod (0: trials run on workers only).")] = 0,
    head_memory: Annotated[str, typer.Option(help="Memory of the head pod, where the search's driver runs.")] = "4Gi",
    job_name: Annotated[str, typer.Option(help="The RayJob's name (a Kubernetes name).")] = "digitsearch",
    ttl: Annotated[int, typer.Option(help="Seconds the cluster stays after the search ends (ttlSecondsAfterFinished).")] = 600,
    pvc: Annotated[Optional[str], typer.Option(help="A ReadWriteMany PersistentVolumeClaim to mount on every pod, for the results.")] = None,
    mount_path: Annotated[str, typer.Option(help="Where --pvc is mounted.")] = "/mnt/shared",
    output: Output = None,
):
    """Print a KubeRay RayJob manifest whose entrypoint is `digitsearch tune ...`; the cluster goes when it ends."""
    from digitsearch import cluster

    text = cluster.kuberay_manifest(ctx.args, workers=workers, cpus_per_worker=cpus_per_worker,
                                    gpus_per_worker=gpus_per_worker, memory=memory, image=image, job_name=job_name,
                                    head_num_cpus=head_num_cpus, head_memory=head_memory, ttl=ttl, pvc=pvc,
                                    mount_path=mount_path)
    _emit(text, output, "apply it with: kubectl apply -f {}")


def main() -> None:
    """Entry point: also Typer's own usage errors (a bad option, a non-number) become one line."""
    try:
        code = app(prog_name="digitsearch", standalone_mode=False)
    except TyperException as err:  # Typer's usage errors; exit code 2 like ours
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        if message:  # empty after `digitsearch` alone, which has just printed the help
            typer.echo(f"error: {message} (see `digitsearch --help`)", err=True)
        sys.exit(getattr(err, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
