"""`digitsearch cluster slurm ... -- tune ...`: an sbatch script that starts a Ray head on the
job's first node and a worker on every other node with srun (the pattern of Ray's "Deploying
on Slurm"), waits until all nodes have joined, then runs `digitsearch tune ... --address
<head>:<port>` on the head node. Nothing here starts Ray or talks to a cluster.

The script is the template templates/slurm.sh.j2 (package data), rendered by Jinja2; every
value is checked here first (one-line UserError), and the search's words are shell-quoted.
"""
from __future__ import annotations

import re
from functools import lru_cache

from digitsearch.errors import UserError
from digitsearch.launch.checks import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_PORT,
    check_count,
    check_port,
    check_tune_args,
    tune_command,
)

TEMPLATE = "slurm.sh.j2"
DEFAULT_WAIT_TIMEOUT = 300  # seconds the script waits for every node to join
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PARTITION = re.compile(r"[A-Za-z0-9_.,-]+")
_TIME = re.compile(r"([0-9]{1,4}):([0-9]{2})")


def slurm_time(text: str) -> str:
    """HH:MM (hours may exceed 24) as sbatch's HH:MM:SS; sbatch itself would read `01:30` as 1 minute 30 seconds."""
    match = _TIME.fullmatch(text.strip())
    if not match or int(match.group(2)) > 59:
        raise UserError(f"--time must be HH:MM, hours and minutes, e.g. 02:00 or 36:30 (got {text!r})")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == minutes == 0:
        raise UserError("--time must be longer than 00:00")
    return f"{hours:02d}:{minutes:02d}:00"


def _check_name(value: str, option: str, pattern: re.Pattern) -> str:
    if not pattern.fullmatch(value):
        raise UserError(f"{option} {value!r} may only hold letters, digits, '.', '_' and '-'"
                        + (" (and ',' between partitions)" if pattern is _PARTITION else ""))
    return value


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("digitsearch.launch", "templates"),
        # bash's ${#array[@]} would open a Jinja comment: comments are <#-- --#> instead
        comment_start_string="<#--", comment_end_string="--#>",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )
    return env.get_template(TEMPLATE)


def slurm_script(tune_args: list[str], *, nodes: int, cpus_per_node: int, gpus_per_node: int, time: str,
                 job_name: str = "digitsearch", partition: str | None = None, port: int = DEFAULT_PORT,
                 dashboard_port: int = DEFAULT_DASHBOARD_PORT, setup: list[str] | tuple[str, ...] = (),
                 wait_timeout: int = DEFAULT_WAIT_TIMEOUT) -> str:
    """An sbatch script: Ray head on the first node, workers on the rest, then the search on the head."""
    args = check_tune_args(tune_args)
    for value, option, minimum in ((nodes, "--nodes", 1), (cpus_per_node, "--cpus-per-node", 1),
                                   (gpus_per_node, "--gpus-per-node", 0), (wait_timeout, "--wait-timeout", 1)):
        check_count(value, option, minimum)
    walltime = slurm_time(time)
    _check_name(job_name, "--job-name", _NAME)
    if partition is not None:
        _check_name(partition, "--partition", _PARTITION)
    check_port(port, "--port")
    check_port(dashboard_port, "--dashboard-port")
    if port == dashboard_port:
        raise UserError(f"--port and --dashboard-port must differ (both {port})")
    gpus = f" --gpus-per-node={gpus_per_node}" if gpus_per_node else ""
    return _template().render(
        job_name=job_name, nodes=nodes, cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node,
        walltime=walltime, partition=partition, port=port, dashboard_port=dashboard_port,
        wait_timeout=wait_timeout, setup_lines=[line for text in setup for line in text.splitlines()],
        # one Ray node per machine, given all its CPUs and GPUs
        step=f"srun --nodes=1 --ntasks=1 --cpus-per-task={cpus_per_node}{gpus}",
        resources=f"--num-cpus={cpus_per_node} --num-gpus={gpus_per_node}",
        search=tune_command(args, '"$head_address"'),
    )
