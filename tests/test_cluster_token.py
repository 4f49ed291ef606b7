"""A cluster started the way Ray 2.60 starts one (`ray start --head` with a token in
~/.ray/auth_token: token authentication on) is reached by `--address HOST:PORT` and by `submit`'s
job client from a plain environment, the token read where the user has it; without one, one
line says what to do."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from raycluster import LocalCluster

from conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.extended]  # a head of its own: 28 s, beyond the gating tier's 5 minutes

DRIVER = """
import sys
from digitsearch.errors import UserError
from digitsearch.launch import jobs
from digitsearch.search import session
try:
    if sys.argv[1].startswith("http"):
        print("jobs", len(jobs.client(sys.argv[1]).list_jobs()))
    else:
        print("CPUs", session.connect(sys.argv[1], False).cluster_resources()["CPU"])
except UserError as err:
    print("error:", err)
"""


def _driver(address: str, env: dict) -> str:
    ran = subprocess.run([sys.executable, "-c", DRIVER, address], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "InvalidAuthToken" not in ran.stderr and "Traceback" not in ran.stderr, ran.stderr[-3000:]  # Ray's own lines
    return ran.stdout.strip().splitlines()[-1]


def test_a_token_cluster_is_reached_with_the_users_token(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    cluster = LocalCluster()
    cluster.env = {**plain, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        cluster._start(head=True)
        assert _driver(cluster.gcs_address, cluster.env) == "CPUs 1.0"
        assert _driver(cluster.dashboard_url, cluster.env).startswith("jobs ")  # `submit` reaches its job server
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        line = _driver(cluster.gcs_address, {**plain, "HOME": str(elsewhere)})
        assert line.startswith("error: ") and "~/.ray/auth_token" in line, line
    finally:
        cluster.stop()
