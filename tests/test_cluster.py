"""A real two-node Ray cluster on this machine (head + worker, 1 CPU each, all on 127.0.0.1):
a search with --address uses both nodes, `submit` runs a search as a Ray Job, and a search
survives the worker node being killed mid-search. Every process is stopped by its pid."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from raycluster import LocalCluster

from conftest import ROOT

TINY = ("--trials", "4", "--max-epochs", "2", "--quiet")
# a net that trains an epoch of the digits in a fraction of a second, so that the one CPU
# left after a node dies finishes the search quickly
SMALL_NET = ("--set", "cnn.depth=1", "--set", "cnn.filters_1=16", "--set", "cnn.pool_1=max",
             "--set", "cnn.padding=valid", "--set", "cnn.dense_layers=0", "--set", "batch_size=128")


@pytest.fixture(scope="module")
def cluster():
    nodes = LocalCluster(cpus=1)
    # the job server runs `python -m digitsearch.cli`: this environment's python
    nodes.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{nodes.env.get('PATH', '')}"
    try:
        nodes.start(workers=1)
        yield nodes
    finally:
        nodes.stop()
    assert not any(node.pids() for node in nodes.nodes)


def _cli(cluster, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], env=cluster.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_search_with_address_runs_trials_on_both_nodes(cluster, tmp_path):
    nodes = cluster.alive_node_ids()
    assert len(nodes) == 2
    run = _cli(cluster, "tune", *TINY, "--results", str(tmp_path), "--name", "two", "--address", cluster.gcs_address)
    assert run.returncode == 0, run.stdout + run.stderr
    table = pd.read_csv(tmp_path / "two" / "leaderboard.csv")
    assert len(table) == 4 and set(table["status"]) <= {"completed", "stopped early", "over budget"}
    assert set(table["node"]) == set(nodes)  # trials ran on the head and on the worker


def test_submit_runs_a_search_as_a_ray_job_and_streams_its_logs(cluster, tmp_path):
    run = _cli(cluster, "submit", "--address", cluster.dashboard_url, "--", "tune", "--trials", "2",
               "--max-epochs", "1", "--results", str(tmp_path), "--name", "job")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "submitted job" in run.stdout
    assert "best: " in run.stdout  # the search's own output, streamed back
    assert "succeeded" in run.stdout
    assert (tmp_path / "job" / "best.json").is_file()
    job_id = run.stdout.split("submitted job ", 1)[1].split()[0]
    status = _cli(cluster, "submit", "--address", cluster.dashboard_url, "--status", job_id)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    logs = _cli(cluster, "submit", "--address", cluster.dashboard_url, "--logs", job_id)
    assert "best: " in logs.stdout


def test_submit_with_a_failing_command_returns_its_exit_code(cluster):
    run = _cli(cluster, "submit", "--address", cluster.dashboard_url, "--", "tune", "--trials", "0")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--trials" in run.stdout and "greater than or equal to 1" in run.stdout


def test_a_search_survives_the_worker_node_dying(cluster, tmp_path):
    """Kill every process of the worker node (by pid) once trials run there; the search
    reschedules them on the head and completes."""
    worker = cluster.nodes[1]
    args = [sys.executable, str(ROOT / "cli.py"), "tune", "--trials", "4", "--max-epochs", "15", "--scheduler", "fifo",
            *SMALL_NET,
            "--results", str(tmp_path), "--name", "lost", "--address", cluster.gcs_address]
    driver = subprocess.Popen(args, env=cluster.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(driver.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not _trial_running_on(tmp_path / "lost", worker) and time.monotonic() < deadline:
            time.sleep(0.5)
        killed = time.monotonic()
        worker.kill()
        assert driver.wait(timeout=300) == 0, "".join(lines)
        print(f"search ended {time.monotonic() - killed:.1f} s after the kill")
    finally:
        if driver.poll() is None:
            driver.kill()
    reader.join(10)
    table = pd.read_csv(tmp_path / "lost" / "leaderboard.csv")
    assert len(table) == 4
    assert (table["status"] != "error").all(), table[["trial_id", "status", "note"]]
    # the trial that was on the dead node failed once (Ray's record of it) and was run again
    failed_once = list((tmp_path / "lost" / "tune").glob("trial_*/error.txt"))
    assert failed_once, "".join(lines)
    assert len(cluster.alive_node_ids()) == 1


def _trial_running_on(folder: Path, worker) -> bool:
    """A trial has reported an epoch from the worker node (its node id in result.json)."""
    return any(worker.node_id in path.read_text() for path in (folder / "tune").glob("trial_*/result.json"))
