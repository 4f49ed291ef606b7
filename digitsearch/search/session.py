"""Connecting to Ray: a private local instance, or an existing cluster (`--address`).

Local: Ray starts with its dashboard off and token authentication on (its token file mode 600);
Ray 2.60 binds its gRPC servers on every interface with no setting to narrow them (docs/scaling-out.md).
Cluster: `auto`, `HOST:6379` or `ray://HOST:10001`; the driver ships this package to the
workers (runtime_env py_modules) so that every node trains with the driver's code.
Inside a Ray Job (`digitsearch submit`) RAY_ADDRESS is set and the job's cluster is used.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable

from digitsearch.errors import UserError
from digitsearch.search import local_ray, ray_versions
from digitsearch.store import ray_token
from digitsearch.store.layout import is_uri

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # digitsearch/, shipped to a cluster's workers
SYNC_LOGGER = "ray.tune.execution.experiment_state"
RAY_CLIENT = "ray://"  # the scheme of a Ray Client address
# Ray's atomic save writes `.<uuid4>-tmp-<name>` beside the file it replaces
_RAY_TMP_FILE = re.compile(r"/\.[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-tmp-")


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: --address, else the Ray Job's RAY_ADDRESS, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def connect(address: str | None, verbose: bool):
    """ray.init for a local run or a cluster; a cluster that cannot be reached is one line, exit 2."""
    import ray

    if _EARLY.wait():  # a start begun by starting_early() finishes here
        _ready_for_trials(ray)
    if ray.is_initialized():
        return ray
    level = logging.INFO if verbose else logging.ERROR
    target = cluster_address(address)
    kept = local_ray.kept_up() if target is None else None
    if kept:  # `digitsearch ray up`: the same machine and package, so no code is shipped
        local_ray.present_token(kept)
        ray.init(address=kept.address, log_to_driver=verbose, logging_level=level, configure_logging=True)
        unpin_trial_actors()
    elif target is None:
        _init_local(verbose)
        _ready_for_trials(ray)
    if target is None:
        return ray
    token = None if target.startswith(RAY_CLIENT) else local_ray.present_user_token()
    try:
        with _core_lines_held_back(verbose):
            ray.init(address=target, log_to_driver=verbose, logging_level=level, configure_logging=True,
                     runtime_env=_shipped_code(target))
    except ray.exceptions.AuthenticationError:
        raise UserError(_token_refused(target, token)) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        tokenless = not target.startswith(RAY_CLIENT) and ray_token.user_token() is None
        if tokenless and local_ray.answers(target, timeout=2.0):
            # the head's port answers yet the driver is turned away: Ray 2.60 says so as a failed connection
            raise UserError(_token_refused(target, None)) from None
        mismatch = ray_versions.mismatch_line(target, str(err))
        if mismatch:
            raise UserError(mismatch) from None
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot reach the Ray cluster at {target!r}: {message}") from None
    return ray


@contextmanager
def _core_lines_held_back(verbose: bool):
    """Ray's C++ core writes to file descriptor 2 itself, past Python's logging: a driver that a
    token cluster turns away prints an `InvalidAuthToken` line a second for about 20 seconds.
    Without --verbose, what it writes while the driver connects goes to a scratch file; connect()
    says in one line what happened."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _token_refused(target: str, token: str | None) -> str:
    if ray_token.user_token() is None:
        return (f"the Ray cluster at {target!r} answers but turned this driver away, and this machine has no Ray "
                "authentication token: if the cluster uses one (Ray 2.60's default), copy the head's "
                "~/.ray/auth_token here (or set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)")
    mode = os.environ.get("RAY_AUTH_MODE")
    return (f"the Ray cluster at {target!r} refused this driver (token from {token or ray_token.user_token()}, "
            f"RAY_AUTH_MODE={mode}): use the head's ~/.ray/auth_token, with RAY_AUTH_MODE=token or unset")


def _init_local(verbose: bool) -> None:
    """ray.init of a private local Ray: dashboard off, its token readable by the user alone (Ray
    2.60's gRPC servers still listen on every interface: docs/scaling-out.md says which), the
    settings of local_ray.LOCAL_RAY_ENV, Ray's logs streamed to the terminal only with --verbose."""
    import ray

    for name, value in local_ray.LOCAL_RAY_ENV.items():
        os.environ.setdefault(name, value)
    ray_token.keep_token_private()
    # address="local": a new Ray even where `ray start` left /tmp/ray/ray_current_cluster, which a
    # bare ray.init() would join (a Ray of someone else's, without these settings, or one long gone)
    ray.init(address="local", include_dashboard=False, log_to_driver=verbose, configure_logging=True,
             logging_level=logging.INFO if verbose else logging.ERROR)


def _ready_for_trials(ray) -> None:
    """A private Ray just started: Tune's trial actors may take its prestarted workers, and those
    workers have finished their imports before the driver goes on (local_ray.await_idle_workers).
    Ray gives an actor asked for meanwhile a new worker, which imports torch again (measured: one
    trial on a new worker, a prestarted one left idle). Waiting later, just before Tuner.fit,
    measured worse: both trials on new workers, the prestarted ones idle."""
    unpin_trial_actors()
    local_ray.await_idle_workers(os.getpid(), int(ray.cluster_resources().get("CPU", 1)))


def unpin_trial_actors() -> None:
    """Tune's trial actors on the workers Ray prestarted and preloaded. Tune gives every trial
    actor runtime_env env_vars {"PL_DISABLE_FORK": "1"}; an actor whose runtime env differs from
    the job's cannot use a prestarted worker, so each trial waited for a cold one (about 5 s of
    torch imports on 2 cores, while the prestarted workers idled). The variable comes from
    local_ray.LOCAL_RAY_ENV instead, and Tune's copy is removed (only for the private local Ray)."""
    from ray.tune.execution import class_cache

    class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)


class _EarlyStart:
    """A private local Ray started in a background thread, so that Ray's processes come up and its
    workers import torch while the driver imports torch and Ray Tune and loads the data (issue 16).
    connect() waits for it.

    The thread stays alive until stop(): Ray ties the processes it starts to the thread that
    started them (Linux's parent-death signal is per thread), so a thread that ended would take
    Ray with it. An error meanwhile waits for the start and shuts Ray down: ray.init cannot be
    interrupted, and a process that ends in the middle of it leaves Ray's agents running."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.ready, self.release, self.waited = threading.Event(), threading.Event(), False

    def begin(self, verbose: bool) -> None:
        self.ready, self.release, self.waited = threading.Event(), threading.Event(), False
        self.thread = threading.Thread(target=self._run, args=(verbose,), name="ray-start", daemon=True)
        self.thread.start()

    def _run(self, verbose: bool) -> None:
        try:
            _init_local(verbose)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread by wait()
            self.error = err
        self.ready.set()
        self.release.wait()  # until stop() has shut Ray down

    def wait(self) -> bool:
        """True the first time after a background start: Ray is up (or the start's error is raised
        here, in the main thread)."""
        if self.thread is None or self.waited:
            return False
        self.ready.wait()
        self.waited = True
        if self.error is not None:
            error, self.error = self.error, None
            self.end()
            raise error
        if threading.current_thread() is threading.main_thread():
            # what ray.init does in the main thread: SIGTERM exits through atexit, which stops Ray's processes
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        return True

    def end(self) -> None:
        """After ray.shutdown: the holding thread may go."""
        if self.thread is not None:
            self.release.set()
            self.thread = None


_EARLY = _EarlyStart()


@contextmanager
def starting_early(address: str | None, verbose: bool):
    """Within: a private local Ray comes up in the background; for a cluster or a kept-up
    local Ray (local_ray.kept_up) nothing happens here. An error inside leaves no Ray behind."""
    import ray

    if cluster_address(address) is not None or local_ray.kept_up() or ray.is_initialized() or _EARLY.thread:
        yield
        return
    _quiet_filter("ray._private.worker", NotMainThreadFilter)
    _EARLY.begin(verbose)
    try:
        yield
    except BaseException:
        try:
            _EARLY.wait()
        except Exception:  # noqa: BLE001 - the error inside is the one to report
            pass
        stop()
        raise


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
    err = local_ray.connect_error(host, int(port), timeout)
    if err is not None:
        raise UserError(f"cannot reach the Ray cluster at {target!r} ({err.strerror or err}); is `ray start --head` "
                        f"running there, and is the port open?")


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


class NotMainThreadFilter(logging.Filter):
    """Drops ray.init's warning that it set no SIGTERM handler from a background thread:
    _EarlyStart.wait sets the same handler from the main thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in str(record.msg)


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


def check_resources(req, families: tuple[str, ...] = (), echo: Callable[[str], None] = print):
    """Ray up (started or joined), and the request with a trial's GPU share settled: without
    --gpus-per-trial it is decided here (gpu_share) and said in a line. A trial bigger than the
    machine or cluster is refused here, before an experiment folder is written."""
    resources = start(req.address, req.verbose).cluster_resources()
    if req.gpus_per_trial is None:
        share, said = gpu_share(families, resources.get("GPU", 0))
        req = replace(req, gpus_per_trial=share)
        if said:
            echo(said)
    concurrency(req, resources.get("CPU", 1), resources.get("GPU", 0))
    return req


GPU_SHARES = {"transfer": 1.0}  # an ImageNet backbone (up to 224 px inputs) takes a GPU of its own
SMALL_NET_SHARE = 0.25  # the other families' nets on 28x28 images: four trials share a GPU


def gpu_share(families: tuple[str, ...], gpus: float) -> tuple[float, str | None]:
    """A trial's GPU share where the user gave none: 0 without GPUs; on GPUs the rule of
    GPU_SHARES (the largest share of the space's families), and the line that says so."""
    if gpus <= 0:
        return 0.0, None
    share = max((GPU_SHARES.get(family, SMALL_NET_SHARE) for family in families), default=SMALL_NET_SHARE)
    per_gpu = slots_of(1, share)
    return share, (f"gpus: {gpus:g} GPU{'s' * (gpus != 1)} and no --gpus-per-trial: {share:g} GPU a trial "
                   f"({per_gpu} share a GPU); --gpus-per-trial 0 keeps the trials on the CPUs")


def concurrency(req, cpus: float, gpus: float, trials: int | None = None) -> int:
    """As many trials at once as the resources hold, unless the user asked for fewer."""
    slots = slots_of(cpus, req.cpus_per_trial)
    if (req.gpus_per_trial or 0) > 0:
        slots = min(slots, slots_of(gpus, req.gpus_per_trial))
    if slots < 1:
        raise UserError(
            f"one trial needs {req.cpus_per_trial} CPUs and {req.gpus_per_trial} GPUs "
            f"but this machine has {cpus:g} CPUs and {gpus:g} GPUs; lower --cpus-per-trial/--gpus-per-trial"
        )
    return max(1, min(req.max_concurrent or slots, slots, trials or req.trials or slots))


RESOURCE_UNIT = 10_000  # Ray keeps resource amounts in fixed point, to 1/10,000 of a unit


def slots_of(total: float, each: float) -> int:
    """How many shares of `each` fit in `total`, as Ray counts them: in fixed point, so 1 GPU
    holds 5 trials of 0.2 (in floating point 1 // 0.2 is 4.0) and 10 of 0.1 (not 9)."""
    return int(round(total * RESOURCE_UNIT)) // max(1, int(round(each * RESOURCE_UNIT)))


def stop() -> None:
    """Shut this process's Ray down (the private local one, or the connection to a cluster):
    `tune --retrain` does before it retrains, so that Ray's idle processes neither take the
    retrain's CPU nor skew the calibration of its epochs."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _EARLY.end()
