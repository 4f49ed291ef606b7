"""Shared test helpers: where the real data are, and running the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Ray 2.60 writes ~/.ray/auth_token the first time a local Ray starts; two test workers
    starting their first searches at once would each write their own. Make it once, first."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("RAY_AUTH_TOKEN"):
        return
    if not (Path.home() / ".ray" / "auth_token").is_file():
        subprocess.run([str(Path(sys.executable).with_name("ray")), "get-auth-token", "--generate"],
                       capture_output=True, timeout=120)


# the longest files first: `make test` gives each of its two workers whole files in this
# order, and a long file started last would run on alone at the end
SLOWEST_FIRST = ("test_families_search.py", "test_bench.py", "test_cluster.py", "test_faults.py", "test_search_e2e.py",
                 "test_board.py", "test_exports.py", "test_packaging.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file stays


def shared_data() -> Path:
    """../shared/data beside the checkout (as on CI), or $DIGITSEARCH_SHARED_DATA."""
    return Path(os.environ.get("DIGITSEARCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line, through the top-level cli.py, in a fresh process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """A user error: one line starting with 'error:', no traceback."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def write_kaggle_csv(path: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    table = pd.DataFrame(images.reshape(len(images), -1), columns=[f"pixel{i}" for i in range(images[0].size)])
    if labels is not None:
        table.insert(0, "label", labels)
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def digits_bundle():
    from digitsearch.data import load

    return load("digits")
