"""Connecting to Ray: a private local instance, or an existing cluster (`--address`).

Local: Ray starts with its dashboard off, so nothing listens beyond 127.0.0.1.
Cluster: `auto`, `HOST:6379` or `ray://HOST:10001`; the driver ships this package to the
workers (runtime_env py_modules) so that every node trains with the driver's code.
Inside a Ray Job (`digitsearch submit`) RAY_ADDRESS is set and the job's cluster is used.
"""
from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.store.layout import is_uri

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # digitsearch/, shipped to a cluster's workers
SYNC_LOGGER = "ray.tune.execution.experiment_state"
RAY_CLIENT = "ray://"  # the scheme of a Ray Client address
WORKER_NICENESS = "RAY_worker_niceness"  # read by the raylet when it starts a worker (ray_constants)
# Ray's atomic save writes `.<uuid4>-tmp-<name>` beside the file it replaces
_RAY_TMP_FILE = re.compile(r"/\.[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-tmp-")


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: --address, else the Ray Job's RAY_ADDRESS, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def connect(address: str | None, verbose: bool):
    """ray.init for a local run or a cluster; a cluster that cannot be reached is one line, exit 2."""
    import ray

    if ray.is_initialized():
        return ray
    level = logging.INFO if verbose else logging.ERROR
    target = cluster_address(address)
    if target is None:
        # Ray starts its workers at nice 15; the trials are the work the user asked for, and beside
        # any other busy process (a browser, a second search) they would nearly stop. 0 keeps them at
        # the command's own priority (the raylet inherits it; workers add this value to it).
        os.environ.setdefault(WORKER_NICENESS, "0")
        ray.init(include_dashboard=False, log_to_driver=verbose, logging_level=level, configure_logging=True)
        return ray
    try:
        ray.init(address=target, log_to_driver=verbose, logging_level=level, configure_logging=True,
                 runtime_env=_shipped_code(target))
    except (ConnectionError, RuntimeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot reach the Ray cluster at {target!r}: {message}") from None
    return ray


def through_ray_client(address: str | None) -> bool:
    """Whether the cluster to join (cluster_address) is reached through Ray Client (ray://)."""
    return (cluster_address(address) or "").startswith(RAY_CLIENT)


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in a moment, before any data is loaded or folder written, when HOST:PORT does not
    answer: Ray itself retries a dead address for minutes."""
    target = cluster_address(address)
    if target is None or target == "auto":
        return
    host, _, port = target.removeprefix(RAY_CLIENT).rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {target!r}: write auto, HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise UserError(f"cannot reach the Ray cluster at {target!r} ({err.strerror or err}); is `ray start --head` "
                        f"running there, and is the port open?") from None


def _shipped_code(target: str) -> dict:
    # inside a Ray Job the job's runtime_env already carries the project
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and not target.startswith(RAY_CLIENT):
        return {}
    return {"py_modules": [str(PACKAGE_DIR)], "excludes": ["__pycache__"]}


def alive_nodes(ray) -> list[dict]:
    return [node for node in ray.nodes() if node.get("Alive")]


def storage_warning(storage: str, nodes: int) -> str | None:
    """Ray requires every node to reach the experiment folder; a plain local path on a
    multi-node cluster only works when it is a shared filesystem."""
    if nodes <= 1 or is_uri(storage):
        return None
    return (f"warning: the cluster has {nodes} nodes but the experiment is stored at {storage}, a path on "
            f"this machine; unless every node sees it (a shared filesystem), pass --storage with a shared "
            f"folder or a URI such as s3://bucket/digitsearch")


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


def start(address: str | None, verbose: bool):
    """Ray for a search: connected, and (unless verbose) without the log lines our own
    progress lines and leaderboard already say better."""
    ray = connect(address, verbose)
    if not verbose:
        _quiet_filter(SYNC_LOGGER, TransientSyncErrorFilter)
        _quiet_filter("ray.tune.execution.tune_controller", TrialFailureFilter)
        _quiet_filter("ray.tune.tune", TrialFailureFilter)
    return ray


def check_resources(req) -> int:
    """Ray up (started or joined), and the trials it can run at once; a trial bigger than the
    machine or cluster is refused here, before an experiment folder is written."""
    resources = start(req.address, req.verbose).cluster_resources()
    return concurrency(req, resources.get("CPU", 1), resources.get("GPU", 0))


def concurrency(req, cpus: float, gpus: float, trials: int | None = None) -> int:
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


def stop() -> None:
    """Shut this process's Ray down (the private local one, or the connection to a cluster):
    `tune --retrain` does before it retrains, so that Ray's idle processes neither take the
    retrain's CPU nor skew the calibration of its epochs."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
