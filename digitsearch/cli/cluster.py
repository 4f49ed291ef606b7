"""`digitsearch submit` (a command as a Ray Job) and `digitsearch cluster slurm|kuberay` (a
launch file that runs a search on a multi-node Ray cluster)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import app
from digitsearch.errors import UserError

AFTER_DASHES = {"allow_extra_args": True, "ignore_unknown_options": True}
TUNE_METAVAR = "[OPTIONS] -- tune [TUNE OPTIONS]"

JOB_ADDRESS = "The head's dashboard URL (default: RAY_ADDRESS when it is an http URL, else http://127.0.0.1:8265)."
WAIT = "Stream the job's logs and exit with its status; --no-wait prints the job id and returns."
OUTPUT = "Write the file here instead of printing it (an existing file is refused)."
Output = Annotated[Optional[Path], typer.Option(help=OUTPUT)]


@app.command(context_settings=AFTER_DASHES)
def submit(
    ctx: typer.Context,
    address: Annotated[Optional[str], typer.Option(help=JOB_ADDRESS)] = None,
    wait: Annotated[bool, typer.Option(help=WAIT)] = True,
    status: Annotated[Optional[str], typer.Option("--status", help="Print a submitted job's status.")] = None,
    logs: Annotated[Optional[str], typer.Option("--logs", help="Print a submitted job's logs so far.")] = None,
    stop: Annotated[Optional[str], typer.Option("--stop", help="Stop a submitted job.")] = None,
):
    """Run a digitsearch command on a Ray cluster as a Ray Job: `digitsearch submit -- tune --space cnn ...`."""
    from digitsearch.launch import jobs

    actions = ((status, jobs.status), (logs, jobs.logs), (stop, jobs.stop))
    asked = [(job_id, action) for job_id, action in actions if job_id]
    if len(asked) > 1 or (asked and ctx.args):
        raise UserError("use one of --status/--logs/--stop JOB_ID, or a command after --, not both")
    if asked:
        job_id, action = asked[0]
        raise typer.Exit(action(address, job_id, typer.echo))
    raise typer.Exit(jobs.submit(address, list(ctx.args), typer.echo, wait=wait))


cluster_app = typer.Typer(
    help="Print a launch file that runs a search on a multi-node Ray cluster: an sbatch script (SLURM) or a "
         "RayJob (KubeRay). Put the search after `--`: `digitsearch cluster slurm --nodes 4 -- tune --space cnn`.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")


def _emit(text: str, output: Optional[Path], submit: str) -> None:
    from digitsearch.launch.checks import write

    if output is None:
        typer.echo(text, nl=False)
        return
    write(text, output)
    typer.echo(f"wrote {output}; {submit.format(output)}")


NODES = "Machines; Ray's head runs on the first, a worker on each other one."
CPUS_PER_NODE = "CPUs per machine, all given to Ray (sbatch --cpus-per-task)."
GPUS_PER_NODE = "GPUs per machine, all given to Ray (sbatch --gpus-per-node; 0 asks for none)."
PARTITION = "sbatch --partition (when left out: the cluster's default partition)."
SETUP = "A shell line run before Ray starts, e.g. 'source .venv/bin/activate' (repeatable)."
WAIT_TIMEOUT = "Seconds to wait for every node to join before giving up."
Port = Annotated[int, typer.Option(min=1, max=65535, help="Ray's GCS port on the head node.")]
DashboardPort = Annotated[int, typer.Option(min=1, max=65535, help="Ray dashboard port on the head node.")]


@cluster_app.command(context_settings=AFTER_DASHES, options_metavar=TUNE_METAVAR)
def slurm(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(min=1, help=NODES)] = 2,
    cpus_per_node: Annotated[int, typer.Option(min=1, help=CPUS_PER_NODE)] = 8,
    gpus_per_node: Annotated[int, typer.Option(min=0, help=GPUS_PER_NODE)] = 0,
    time: Annotated[str, typer.Option(help="Wall-clock limit, HH:MM.")] = "02:00",
    job_name: Annotated[str, typer.Option(help="sbatch --job-name.")] = "digitsearch",
    partition: Annotated[Optional[str], typer.Option(help=PARTITION)] = None,
    port: Port = 6379,
    dashboard_port: DashboardPort = 8265,
    setup: Annotated[Optional[list[str]], typer.Option(help=SETUP)] = None,
    wait_timeout: Annotated[int, typer.Option(min=1, help=WAIT_TIMEOUT)] = 300,
    output: Output = None,
):
    """Print an sbatch script: Ray on every node with srun, then `digitsearch tune ... --address` on the head."""
    from digitsearch.launch.slurm import slurm_script

    text = slurm_script(ctx.args, nodes=nodes, cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node,
                        time=time, job_name=job_name, partition=partition, port=port,
                        dashboard_port=dashboard_port, setup=setup or [], wait_timeout=wait_timeout)
    _emit(text, output, "submit it with: sbatch {}")


IMAGE = "Container image with digitsearch and Ray (required)."
WORKERS = "Worker pods (replicas, minReplicas and maxReplicas)."
CPUS_PER_WORKER = "CPUs per worker pod (requests and limits)."
GPUS_PER_WORKER = "nvidia.com/gpu per worker pod (0 asks for none)."
MEMORY = "Memory per worker pod, a Kubernetes quantity."
HEAD_CPUS = "CPUs Ray may schedule trials on in the head pod (0: trials run on workers only)."
HEAD_MEMORY = "Memory of the head pod, where the search's driver runs."
RAYJOB_NAME = "The RayJob's name (a Kubernetes name)."
TTL = "Seconds the cluster stays after the search ends (ttlSecondsAfterFinished)."
PVC = "A ReadWriteMany PersistentVolumeClaim to mount on every pod, for the results."


@cluster_app.command(context_settings=AFTER_DASHES, options_metavar=TUNE_METAVAR)
def kuberay(
    ctx: typer.Context,
    image: Annotated[Optional[str], typer.Option(help=IMAGE)] = None,
    workers: Annotated[int, typer.Option(min=1, help=WORKERS)] = 2,
    cpus_per_worker: Annotated[int, typer.Option(min=1, help=CPUS_PER_WORKER)] = 4,
    gpus_per_worker: Annotated[int, typer.Option(min=0, help=GPUS_PER_WORKER)] = 0,
    memory: Annotated[str, typer.Option(help=MEMORY)] = "8Gi",
    head_num_cpus: Annotated[int, typer.Option(min=0, help=HEAD_CPUS)] = 0,
    head_memory: Annotated[str, typer.Option(help=HEAD_MEMORY)] = "4Gi",
    job_name: Annotated[str, typer.Option(help=RAYJOB_NAME)] = "digitsearch",
    ttl: Annotated[int, typer.Option(min=0, help=TTL)] = 600,
    pvc: Annotated[Optional[str], typer.Option(help=PVC)] = None,
    mount_path: Annotated[str, typer.Option(help="Where --pvc is mounted.")] = "/mnt/shared",
    output: Output = None,
):
    """Print a KubeRay RayJob manifest whose entrypoint is `digitsearch tune ...`; the cluster goes when it ends."""
    from digitsearch.launch.kuberay import kuberay_manifest

    text = kuberay_manifest(ctx.args, workers=workers, cpus_per_worker=cpus_per_worker,
                            gpus_per_worker=gpus_per_worker, memory=memory, image=image, job_name=job_name,
                            head_num_cpus=head_num_cpus, head_memory=head_memory, ttl=ttl, pvc=pvc,
                            mount_path=mount_path)
    _emit(text, output, "apply it with: kubectl apply -f {}")
