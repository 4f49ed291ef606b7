"""Shared test helpers: where the real data are, and running the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The suite runs two workers on two cores, each with searches and retrains of its own: libgomp
# (torch's CPU thread pool) spins 300,000 times at a barrier before a waiting thread sleeps, and
# beside busy processes that spinning keeps the thread it waits for off the cores. On the 2-core
# VM beside three busy processes a 2-thread training step took 2.1-2.6 s, and 1.3-1.6 s with
# 1,000 spins (CI once saw a 0.3-s retrain epoch take 34 s); alone, 1,000 spins cost 5-6 % of a
# retrain's speed, so the product keeps libgomp's default (docs/commands.md). Set before torch
# loads, here and in every command the tests start (they inherit it).
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import numpy as np
import pandas as pd
import pytest
from filelock import FileLock

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
# order, and a long file started last would run on alone at the end. test_search_e2e makes the
# shared search early, so that test_board and test_exports, later, find it made and never wait
# by their measured time, so the two workers end together (a file runs on one worker)
# test_bench and test_time_limit hold `timed_alone` (below) for their timings: apart in this
# order, so that one worker rarely waits for the other's
SLOWEST_FIRST = ("test_bench.py", "test_families_search.py", "test_tasks_search.py", "test_search_e2e.py",
                 "test_objectives_search.py",
                 "test_time_limit.py", "test_faults.py", "test_cluster.py", "test_identity.py", "test_resume_kill.py",
                 "test_ensemble.py", "test_exports.py", "test_docs.py", "test_trial_restart.py", "test_local_ray.py",
                 "test_ray_pins.py", "test_board.py",
                 "test_layout.py", "test_packaging.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file stays
    for item in items:  # `pytest -m "not slow"`: the quick loop while editing
        if rank(item) < len(SLOWEST_FIRST):
            item.add_marker(pytest.mark.slow)


def shared_data() -> Path:
    """../shared/data beside the checkout (as on CI), or $DIGITSEARCH_SHARED_DATA."""
    return Path(os.environ.get("DIGITSEARCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command line, through the top-level cli.py, in a fresh process."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Ran:
    """What a command run in this process left: run_cli's fields."""

    returncode: int
    stdout: str
    stderr: str


def run_in_process(*args: str) -> Ran:
    """The command line in this process (Typer's CliRunner on the app cli.py runs). The searches
    of one test file then share this process's Ray, as a notebook's ds.tune calls do: the first
    starts it, the next skip ray.init and get workers that have imported torch already."""
    from typer.testing import CliRunner

    from digitsearch.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="session", autouse=True)
def one_ray_per_worker(tmp_path_factory):
    """One local Ray per test worker, kept up for the whole session (`digitsearch ray up`): every
    search the tests start, in process or as a command, joins it instead of starting its own
    (about 3 s of ray.init and its daemons' CPU each). The tests of Ray's own start-up run
    without it (PRIVATE_RAY)."""
    from digitsearch.search import local_ray
    from digitsearch.store import kept_ray

    os.environ[kept_ray.STATE_FILE_ENV] = str(tmp_path_factory.mktemp("kept-ray") / "ray.json")
    local_ray.up(echo=lambda line: None)
    yield
    local_ray.down(echo=lambda line: None)


def private_ray_env() -> dict[str, str]:
    """The environment of a command that must start a Ray of its own (tests of the start-up)."""
    from digitsearch.store import kept_ray

    return {**os.environ, kept_ray.STATE_FILE_ENV: kept_ray.NOT_KEPT}


@pytest.fixture(scope="module")
def ray_per_file():
    """For a file whose searches run in process: its Ray goes when the file is done."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def tiny_search(results, name: str, *args: str, trials: int = 2, epochs: int = 1, run=run_cli):
    """A tiny search through the CLI (`run`: run_cli, or run_in_process); (its leaderboard, the run)."""
    extra = {"timeout": 600} if run is run_cli else {}
    run = run("tune", "--trials", str(trials), "--max-epochs", str(epochs), "--name", name,
              "--results", str(results), *args, **extra)
    assert run.returncode == 0, run.stdout + run.stderr
    table = pd.read_csv(results / name / "leaderboard.csv")
    assert len(table) == trials
    return table, run


def tiny_search_in_process(*args, **kwargs):
    """tiny_search through run_in_process: a file of searches sharing one Ray."""
    return tiny_search(*args, run=run_in_process, **kwargs)


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


@dataclass(frozen=True)
class Run:
    """What a CLI run printed, as subprocess.CompletedProcess has it (and JSON can carry)."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class SharedSearch:
    """One real search and its retrain, made once per test session for every file that only reads
    them (test_search_e2e, test_board, test_exports): cnn space, bundled digits, 4 trials of up
    to 3 epochs (the space's 3 starting points first), then `best --retrain --epochs 2 --export
    torchscript,onnx`. Tests that add files write beside it (final-<trial>/, report/)."""

    results: Path
    folder: Path
    tune: Run
    retrain: Run


SHARED_NAME = "shared"
SHARED_SEED = "1"


def _make_shared_search(root: Path) -> dict:
    results = root / "shared-search" / "results"
    tune = run_cli("tune", "--space", "cnn", "--dataset", "digits", "--trials", "4", "--max-epochs", "3",
                   "--grace-epochs", "1", "--name", SHARED_NAME, "--results", str(results), "--seed", SHARED_SEED)
    retrain = run_cli("best", "--results", str(results), "--name", SHARED_NAME, "--retrain", "--epochs", "2",
                      "--export", "torchscript,onnx") if tune.returncode == 0 else tune
    as_run = {name: {"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
              for name, r in (("tune", tune), ("retrain", retrain))}
    return {"results": str(results), **as_run}


@pytest.fixture(scope="session")
def shared_search(tmp_path_factory, worker_id) -> SharedSearch:
    """Made by whichever pytest-xdist worker asks first; the others wait on the lock and read it
    (the pattern of pytest-xdist's docs for session fixtures shared between workers)."""
    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "master" else base.parent  # the run's folder, shared by its workers
    record = root / "shared-search.json"
    with FileLock(str(record) + ".lock"):
        if not record.is_file():
            record.write_text(json.dumps(_make_shared_search(root)))
    made = json.loads(record.read_text())
    search = SharedSearch(Path(made["results"]), Path(made["results"]) / SHARED_NAME,
                          Run(**made["tune"]), Run(**made["retrain"]))
    assert search.tune.returncode == 0, search.tune.stdout + search.tune.stderr
    assert search.retrain.returncode == 0, search.retrain.stdout + search.retrain.stderr
    return search


@pytest.fixture
def timed_alone(tmp_path_factory, worker_id):
    """For a test whose assertion is a wall time or a speed ratio: no other such test runs at the
    same time on the other pytest-xdist worker (the 90-s search once found both cores taken by
    the bench's, and its retrain no longer fitted). Other tests may still run beside it."""
    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "master" else base.parent
    with FileLock(str(root / "timed-alone.lock")):
        yield
