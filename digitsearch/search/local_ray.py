"""The private local Ray's settings, and a local Ray kept up between commands (`digitsearch ray up`).

Every search without --address runs on a Ray of its own, started by session.connect with
LOCAL_RAY_ENV. For many small searches in a row, `digitsearch ray up` starts one local Ray
(`ray start --head --block` in its own session, with the same settings and a token of its
own: a driver without it is refused) and writes where it is to a state file; every later `tune` on this machine
joins it instead of starting one (about 2.5 s of ray.init and Ray's daemons' CPU saved per
command, and the first job's trials find their workers already warm), until `digitsearch ray down`.
The test suite keeps one per test worker the same way.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.store import ray_token
from digitsearch.store.kept_ray import NOT_KEPT, STATE_FILE_ENV, KeptUp, read_state, state_file, write_state

WORKER_NICENESS = "RAY_worker_niceness"  # read by the raylet when it starts a worker (ray_constants)
# What the trial workers import before they are asked for anything: the workers Ray prestarts
# become the trials' actors, so the trial path starts warm. torch._dynamo: every torch optimizer
# imports it when it is created and when it steps (torch._disable_dynamo, _use_grad), about 1 s.
PRELOADED = "torch,torch._dynamo,digitsearch.search.trainable"

# The private local Ray's settings, each with its reason; read from the environment by the
# processes Ray starts (a value the user already exported wins).
LOCAL_RAY_ENV = {
    # Ray starts its workers at nice 15; the trials are the work the user asked for, and beside
    # any other busy process (a browser, a second search) they would nearly stop. 0 keeps them at
    # the command's own priority (the raylet inherits it; workers add this value to it).
    WORKER_NICENESS: "0",
    "RAY_preload_python_modules": PRELOADED,
    # no usage report from a laptop: nothing is sent, and offline nothing waits for it
    "RAY_USAGE_STATS_ENABLED": "0",
    # Prometheus metrics: nothing scrapes them on a laptop, yet every process records and exports them
    "RAY_enable_metrics_collection": "0",
    # task events feed the dashboard's task timeline and the state API, both unused by a search
    "RAY_enable_task_events": "0",
    # Tune sets this for PyTorch Lightning (Ray issue 28197) in its trial actors' runtime_env, which
    # keeps them off the prestarted workers (session.unpin_trial_actors); here every worker inherits it
    "PL_DISABLE_FORK": "1",
}

# A kept-up Ray's workers are started with its raylet, not when its first driver joins (Ray's
# default), so the first `tune` finds them with PRELOADED imported. Not for the Ray a search starts
# itself: there its first driver joins at once, and workers started both ways were not reused
# (measured: the trials waited for new workers while the prestarted ones idled).
# (Its first driver, `ray up`'s own check that a driver can join, would otherwise prestart as many
# again: four workers importing torch on two cores.)
KEPT_UP_ENV = {"RAY_enable_worker_prestart": "1", "RAY_prestart_worker_first_driver": "0"}

IDLE_WORKER = "ray::IDLE"  # a worker's process title once it has connected to its raylet (ray_constants)
PRESTART_WAIT_S = 10.0  # at most; about 1 s on an idle 2-core machine

HOST = "127.0.0.1"  # where this machine reaches the kept-up Ray (Ray itself maps it to the node's address)


def kept_up() -> KeptUp | None:
    """The kept-up local Ray, if one is up (a state file whose Ray is gone is removed)."""
    path = state_file()
    kept = read_state(path) if path else None
    if kept is None:
        return None
    if _alive(kept):
        return kept
    path.unlink(missing_ok=True)
    return None


def _alive(kept: KeptUp) -> bool:
    """Its `ray start` process runs and its head's port answers."""
    return _pid_alive(kept.pid) and answers(kept.address, timeout=1.0)


def answers(address: str, timeout: float) -> bool:
    """Whether HOST:PORT accepts a TCP connection within `timeout`."""
    host, _, port = address.rpartition(":")
    return port.isdigit() and connect_error(host, int(port), timeout) is None


def connect_error(host: str, port: int, timeout: float) -> OSError | None:
    """Why HOST:PORT does not accept a TCP connection within `timeout`, or None when it does."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return err
    return None


def present_token(kept: KeptUp) -> None:
    """This driver presents the kept-up Ray's token when it joins. Ray reads its authentication
    settings from the environment once per process and caches them, so a process that imported
    Ray before (a test runner, a notebook, the Python API) has them read again (ray._raylet's
    Config and token cache: pinned in tests/test_ray_pins.py)."""
    os.environ["RAY_AUTH_TOKEN"] = kept.token
    _token_mode()


def present_user_token() -> str | None:
    """A driver joining a cluster by its address sends the token the user has (store.ray_token),
    as Ray itself does only for `address="auto"`; where it came from, or None."""
    found = ray_token.use_user_token()
    if found is not None:
        _token_mode()
    return found


def _token_mode() -> None:
    """Token mode, read again by a Ray that read its settings before (ray._raylet's caches)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ[ray_token.AUTH_MODE] = "token"
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def up(echo=print, timeout: float = 60.0) -> KeptUp:
    """Start a local Ray that outlives this command (or say where the one already up is)."""
    kept = kept_up()
    if kept:
        echo(f"ray: already up at {kept.address} (since {time.strftime('%H:%M', time.localtime(kept.started))})")
        return kept
    path = state_file()
    if path is None:
        raise UserError(f"{STATE_FILE_ENV}={NOT_KEPT} says no Ray is kept up here; unset it first")
    token, port = secrets.token_hex(32), _free_port()
    env = {**LOCAL_RAY_ENV, **KEPT_UP_ENV, **os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    log = path.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="digitsearch-ray-", dir="/tmp")  # short: Ray's socket paths
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               f"--temp-dir={temp_dir}", "--include-dashboard=false", "--disable-usage-stats"]
    with log.open("w") as out:  # its own session: Ctrl-C in this terminal later does not stop it
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    kept = KeptUp(address=f"{HOST}:{port}", token=token, pid=process.pid, started=time.time(), temp_dir=temp_dir)
    _wait_until_up(kept, process, log, timeout)
    write_state(path, kept)
    echo(f"ray: up at {kept.address}; `digitsearch tune` joins it until `digitsearch ray down`")
    return kept


def _wait_until_up(kept: KeptUp, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """The head's port answers and a driver can join (the token accepted)."""
    import ray

    end = time.monotonic() + timeout
    while not _alive(kept):
        if process.poll() is not None or time.monotonic() > end:
            process.kill()
            lines = [line for line in log.read_text().splitlines() if line.strip()]
            raise UserError(f"could not start a local Ray: {lines[-1] if lines else 'no output'} (log: {log})")
        time.sleep(0.1)
    present_token(kept)
    ray.init(address=kept.address, logging_level="ERROR", log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray.shutdown()
    await_idle_workers(kept.pid, cpus)  # "up" once the first command's workers can be had


def await_idle_workers(root: int, wanted: int, timeout: float = PRESTART_WAIT_S) -> None:
    """Until `wanted` of the Ray workers under process `root` have connected and finished their
    imports (idle: no CPU time spent over 0.1 s), or `timeout`. A worker still importing when
    Tune asks for a trial's actor is passed over for a new one (measured: one trial on a new
    worker, a prestarted one left idle)."""
    end, last = time.monotonic() + timeout, {}
    while time.monotonic() < end:
        spent = _worker_cpu_seconds(root)
        if sum(1 for pid, cpu in spent.items() if last.get(pid) == cpu) >= wanted:
            return
        last = spent
        time.sleep(0.1)


def _worker_cpu_seconds(root: int) -> dict[int, float]:
    """CPU seconds so far of each connected Ray worker (titled ray::IDLE) under process `root`."""
    import psutil

    try:
        descendants = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return {}
    spent = {}
    for proc in descendants:
        try:
            if (proc.cmdline() or [""])[0] == IDLE_WORKER:
                times = proc.cpu_times()
                spent[proc.pid] = times.user + times.system
        except psutil.Error:
            continue
    return spent


def down(echo=print) -> bool:
    """Stop the kept-up local Ray; False when none was up."""
    kept = kept_up()
    if kept is None:
        echo("ray: none kept up")
        return False
    os.kill(kept.pid, signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
    end = time.monotonic() + 30
    while _pid_alive(kept.pid) and time.monotonic() < end:
        time.sleep(0.1)
    state_file().unlink(missing_ok=True)
    shutil.rmtree(kept.temp_dir, ignore_errors=True)
    echo(f"ray: stopped the local Ray at {kept.address}")
    return True


def _pid_alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (up and down in one process): reaped
            return False
    except ChildProcessError:
        pass  # started by another command: not ours to reap
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
