"""Ray's start-up, end to end: the trials of a search take the workers Ray prestarted with torch
and the trainable already imported (a private Ray, and a kept-up one from `digitsearch ray up`);
an error found while the private Ray starts leaves no Ray behind; `ray up|status|down`.

These start Rays of their own (DIGITSEARCH_RAY_FILE=none, or a state file of their own), not the
suite's kept-up one (conftest._start_session_ray)."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import assert_one_line_error, private_ray_env, run_cli
from digitsearch.store import kept_ray

pytestmark = [pytest.mark.e2e, pytest.mark.extended]

# A tiny Tune search on the Ray session.connect gives: where each trial ran, and whether that
# worker had imported the trainable (PRELOADED) before the trial began.
PROBE = """
import json, os, sys
from ray import tune
from digitsearch.search import session
ray = session.connect(None, verbose=False)
import psutil, time
time.sleep(1)  # the prestarted workers have registered
idle = [p.pid for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0] == "ray::IDLE"]

def trial(config):
    import ray
    tune.report({"pid": os.getpid(), "preloaded": "digitsearch.search.trainable" in sys.modules
                 and "torch._dynamo" in sys.modules, "runtime_env": dict(ray.get_runtime_context().runtime_env)})

grid = tune.Tuner(trial, tune_config=tune.TuneConfig(num_samples=2, max_concurrent_trials=2),
                  run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0)).fit()

def kind(proc):  # what a listening process of Ray's is: its binary, its script, or its ray:: title
    cmd = proc.cmdline() or [""]
    if proc.pid == os.getpid():
        return "driver"
    if cmd[0].startswith("ray::"):
        return cmd[0] if "Agent" in cmd[0] else "ray::worker"
    script = next((os.path.basename(c) for c in cmd[1:] if c.endswith(".py")), None)
    return script or os.path.basename(cmd[0])

def listens(proc):  # (kind, ip, port) of each listening socket; none for a process that has exited meanwhile
    try:
        return [(kind(proc), c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []

listening = [found for p in [psutil.Process()] + psutil.Process().children(recursive=True) for found in listens(p)]
print(json.dumps({"idle": idle, "trials": [r.metrics["pid"] for r in grid],
                  "preloaded": [r.metrics["preloaded"] for r in grid],
                  "runtime_envs": [r.metrics["runtime_env"] for r in grid], "listening": listening}))
"""

# What listens beyond 127.0.0.1 during a private Ray's search (docs/scaling-out.md says why):
# Ray 2.60 binds its gRPC servers on every interface and offers no setting to narrow them
BEYOND_LOOPBACK = {"driver", "gcs_server", "raylet", "ray::worker", "ray::DashboardAgent", "ray::RuntimeEnvAgent",
                   "dashboard.py", "monitor.py"}
DASHBOARD_UI_PORT = 8265


def _probe(tmp_path: Path, env: dict) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "tune")], capture_output=True, text=True,
                         env=env, timeout=180)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_private_rays_trials_can_take_its_prestarted_preloaded_workers(tmp_path):
    """The trials' actors carry no runtime env of their own (Tune's PL_DISABLE_FORK removed:
    session.unpin_trial_actors), so Ray may give them the workers it prestarted; and every worker
    has imported the trainable and torch._dynamo before its trial (RAY_preload_python_modules).
    Whether both trials land on prestarted workers depends on the machine's load at the moment
    Tune asks (Ray starts a new worker when none has connected yet): the bench times it."""
    seen = _probe(tmp_path, private_ray_env())
    assert len(seen["idle"]) >= 2
    assert seen["runtime_envs"] == [{}, {}], seen
    assert all(seen["preloaded"]), seen


def test_a_private_ray_listens_beyond_loopback_only_where_the_docs_say(tmp_path):
    """Every socket listening beyond 127.0.0.1 in a private Ray's process tree belongs to a process
    docs/scaling-out.md names; the dashboard's web UI is off."""
    seen = _probe(tmp_path, private_ray_env())
    beyond = {(kind, port) for kind, ip, port in seen["listening"] if not ipaddress.ip_address(ip).is_loopback}
    assert {kind for kind, _ in beyond} <= BEYOND_LOOPBACK, beyond
    assert DASHBOARD_UI_PORT not in {port for _, _, port in seen["listening"]}, seen["listening"]


def _ours(marker: str) -> list[psutil.Process]:
    """Processes whose environment carries `marker` (a command and everything it started)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DIGITSEARCH_TEST_MARK") == marker:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_an_error_found_while_ray_starts_leaves_no_ray_behind(tmp_path):
    """The private Ray starts at once, beside the space's checks and the data; the typo below is
    found meanwhile: one line, exit 2, and none of Ray's processes outlive the command."""
    marker = uuid.uuid4().hex
    env = {**private_ray_env(), "DIGITSEARCH_TEST_MARK": marker}
    run = run_cli("tune", "--dataset", str(tmp_path / "no-such-folder"), "--results", str(tmp_path / "r"), env=env)
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "no-such-folder")
    assert not _ours(marker), [p.cmdline() for p in _ours(marker)]


def test_ray_up_status_down_and_a_search_on_the_kept_up_ray(tmp_path):
    """`ray up` starts a Ray that outlives the command; a search joins it (its workers preloaded
    as a private Ray's are); `ray down` stops it and everything it started."""
    marker = uuid.uuid4().hex
    env = {**os.environ, kept_ray.STATE_FILE_ENV: str(tmp_path / "ray.json"), "DIGITSEARCH_TEST_MARK": marker}
    env.pop("RAY_AUTH_TOKEN", None)  # its own token, not the suite's
    assert "none kept up" in run_cli("ray", "status", env=env).stdout
    up = run_cli("ray", "up", env=env)
    assert up.returncode == 0 and "ray: up at 127.0.0.1:" in up.stdout, up.stderr
    assert oct((tmp_path / "ray.json").stat().st_mode)[-3:] == "600"  # the token's file
    assert "ray: up at" in run_cli("ray", "status", env=env).stdout
    assert "already up" in run_cli("ray", "up", env=env).stdout
    try:
        seen = _probe(tmp_path, env)
        # the kept-up Ray's settings reach its workers (whether the first job's trials take the
        # workers prestarted with the raylet varies from run to run: the bench times it)
        assert all(seen["preloaded"]), seen
    finally:
        down = run_cli("ray", "down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not _ours(marker), [p.cmdline() for p in _ours(marker)]
    assert "none kept up" in run_cli("ray", "down", env=env).stdout


def test_ray_up_where_no_ray_may_be_kept_is_one_line(tmp_path):
    run = run_cli("ray", "up", env={**os.environ, kept_ray.STATE_FILE_ENV: kept_ray.NOT_KEPT})
    assert run.returncode == 2
    assert_one_line_error(run.stderr, f"{kept_ray.STATE_FILE_ENV}={kept_ray.NOT_KEPT}", "unset it")
