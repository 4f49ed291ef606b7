"""A real two-node Ray cluster on this machine (head + worker, 1 CPU each, all on 127.0.0.1):
`submit` runs a search as a Ray Job, and a search with --address uses both nodes and survives
the worker node being killed mid-search. Every process is stopped by its pid."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from raycluster import LocalCluster

from conftest import ROOT
from digitsearch.search.callbacks.faults import TRIAL_FAULT_VARIABLE

pytestmark = pytest.mark.e2e

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


@pytest.mark.extended
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


@pytest.mark.extended
def test_submit_with_a_failing_command_returns_its_exit_code(cluster):
    run = _cli(cluster, "submit", "--address", cluster.dashboard_url, "--", "tune", "--trials", "0")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--trials" in run.stdout and "greater than or equal to 1" in run.stdout


def test_a_search_runs_trials_on_both_nodes_and_survives_the_worker_node_dying(cluster, tmp_path):
    """A search with --address spreads its trials over the head and the worker; the first trial on
    the worker kills that node's raylet (and itself) as its epoch 2 is reported, as a lost machine
    would (DIGITSEARCH_TRIAL_FAULT): Ray declares the node dead, the trial runs again on the head,
    and the search completes every trial."""
    worker = cluster.nodes[1]
    assert len(cluster.alive_node_ids()) == 2
    env = {**cluster.env, TRIAL_FAULT_VARIABLE: f"kill-node-after-epoch:2@{worker.node_id}"}
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), "tune", "--trials", "4", "--max-epochs", "4",
                          "--scheduler", "fifo", *SMALL_NET, "--results", str(tmp_path), "--name", "lost",
                          "--address", cluster.gcs_address], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = tmp_path / "lost"
    table = pd.read_csv(folder / "leaderboard.csv")
    assert len(table) == 4
    assert (table["status"] != "error").all(), table[["trial_id", "status", "note"]]
    # trials ran on both nodes: the head's in their results, and the one on the worker failed once
    # when its node died (Ray's record of it, error.txt) and was run again
    nodes = {json.loads(line)["node"] for path in (folder / "tune").glob("trial_*/result.json")
             for line in path.read_text().splitlines() if line.strip()}
    assert cluster.nodes[0].node_id in nodes, nodes
    assert list((folder / "tune").glob("trial_*/error.txt")), run.stdout[-3000:]
    assert len(cluster.alive_node_ids()) == 1
