"""Shared test helpers: where the real data are, and running the real CLI."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
# SQL over optuna.db: the study trials Tune ran. A config the searcher skipped before training
# (search/feasible.py) is a COMPLETE study trial with user attr 'skipped', but no Tune trial.
RAN = "trial_id not in (select trial_id from trial_user_attributes where key = 'skipped')"

# The tiers (docs/testing.md). A test is a unit unless marked:
#   unit   - no Ray, no Python subprocess: `make test` runs them first, on two workers;
#   e2e    - real searches, retrains, commands and clusters: `make test` runs them after the
#            units, one at a time, on one local Ray started when the first of them needs it;
#            those also marked `extended` (real runs beyond the gating handful) only `make test-all`;
#   timing - asserts a wall-clock figure or a speed against its band: never in `make test`, only
#            in `make check-timing` (serial, on an otherwise idle machine), which prints each figure.
TIERS = ("e2e", "timing")


def tier_of(item) -> str:
    return next((name for name in TIERS if item.get_closest_marker(name)), "unit")


def pytest_configure(config):
    """Ray's token and every file a command writes into the home folder go to the run's own
    folder: a test writes nothing outside its tmp folders (no ~/.ray/auth_token in the real home).
    Set here, in the main process, so that test workers and every command they start inherit it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # two unit workers on two cores: one torch thread each, so neither waits on the other's spinning
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        return
    home = Path(tempfile.mkdtemp(prefix="digitsearch-tests-home-"))
    os.environ["HOME"] = str(home)
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    os.environ.setdefault("MPLBACKEND", "Agg")
    config.stash[_CHECKOUT] = _checkout_state()


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers added here
def pytest_collection_modifyitems(config, items):
    for item in items:  # e2e and timing tests get the Ray and the longer per-test cap they need
        if item.get_closest_marker("extended") and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)  # an extended test is an e2e test make test leaves out
        if tier_of(item) != "unit" and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_CAP_S))


# per-test caps (pytest-timeout): a hung Ray or a lost worker fails its test instead of the whole run
SLOW_TEST_CAP_S = 600

_CHECKOUT = pytest.StashKey[str]()


def _checkout_state() -> str:
    """What `git status` says of the checkout (empty outside a git checkout)."""
    run = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                         text=True)
    return run.stdout if run.returncode == 0 else ""


def pytest_sessionfinish(session, exitstatus):
    """A test that left a file in the checkout (a stray `-o` once got committed) fails the run."""
    if os.environ.get("PYTEST_XDIST_WORKER") or _CHECKOUT not in session.config.stash:
        return
    before, after = session.config.stash[_CHECKOUT], _checkout_state()
    if after != before:
        added = sorted(set(after.splitlines()) - set(before.splitlines()))
        session.config.stash[_CHECKOUT] = after
        print(f"\nthe tests changed the checkout (git status --porcelain): {added}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class NotAUnit(RuntimeError):
    """A unit test (no marker) started Ray or a Python process: it belongs to the e2e tier."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Around a unit test's setup, call and teardown (its module fixtures' included): starting
    Ray or another Python process fails it, naming the marker it needs."""
    if tier_of(item) != "unit":
        _start_session_ray(item.config)
        yield
        return
    import ray

    def refuse_ray(*args, **kwargs):
        raise NotAUnit(f"{item.nodeid} starts Ray: mark it pytest.mark.e2e")

    real_popen = subprocess.Popen.__init__

    def refuse_python(self, args, *rest, **kwargs):
        program = str(args[0] if isinstance(args, (list, tuple)) else args).split()[0]
        if Path(program).name.startswith("python") or program == sys.executable:
            raise NotAUnit(f"{item.nodeid} runs {program} in a subprocess: mark it pytest.mark.e2e, "
                           "or run the command in this process (run_in_process)")
        real_popen(self, args, *rest, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray, "init", refuse_ray)
        patch.setattr(subprocess.Popen, "__init__", refuse_python)
        yield


def shared_data() -> Path:
    """../shared/data beside the checkout (as on CI), or $DIGITSEARCH_SHARED_DATA."""
    return Path(os.environ.get("DIGITSEARCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command line, through the top-level cli.py, in a fresh process (e2e tests only:
    a unit test runs the command in its own process, run_in_process)."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Ran:
    """What a command left: its exit code and output (run_in_process's, or a run_cli's kept)."""

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


_SESSION_RAY = pytest.StashKey[bool]()


def _start_session_ray(config) -> None:
    """One local Ray for every e2e test of the run, started before the first of them (its module
    fixtures included) and kept up (`digitsearch ray up`): each search, in process or as a
    command, joins it instead of starting its own. Tests of Ray's own start-up do not
    (private_ray_env). Unit tests never start it."""
    if config.stash.get(_SESSION_RAY, False):
        return
    from digitsearch.search import local_ray
    from digitsearch.store import kept_ray

    os.environ[kept_ray.STATE_FILE_ENV] = str(Path(tempfile.mkdtemp(prefix="digitsearch-tests-ray-")) / "ray.json")
    local_ray.up(echo=lambda line: None)
    config.stash[_SESSION_RAY] = True
    config.add_cleanup(lambda: local_ray.down(echo=lambda line: None))


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


def write_record(folder: Path, **fields) -> Path:
    """experiment.json in `folder`: a finished 2-trial cnn search on the digits, with `fields` in
    place of its own (store.record checks every read, so a test's experiment is a whole one)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    record = {"name": folder.name, "study_name": folder.name, "created": 1.0, "status": "finished",
              "space": "cnn", "dataset": "digits", "val_fraction": 0.1, "trials": 2, "max_epochs": 2,
              "scheduler": "asha", "search": "optuna", "cpus_per_trial": 1.0, "seed": 0, "results": str(folder.parent),
              "family": "cnn", "families": ["cnn"], "space_path": "cnn", "task": "image", "dataset_name": "digits",
              "sizes": {"train": 1293, "val": 144, "test": 360}, "tune_root": str(folder),
              "rounds": [{"dir": "tune", "trials": fields.get("trials", 2)}], **fields}
    (folder / "experiment.json").write_text(json.dumps(record))
    return folder


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
class SharedSearch:
    """One real search and its retrain, made once per test session for every file that only reads
    them (test_search_e2e, test_board, test_exports): cnn space, bundled digits, 4 trials of up
    to 3 epochs (the space's 3 starting points first), then `best --retrain --epochs 2 --export
    torchscript,onnx`. Tests that add files write beside it (final-<trial>/, report/)."""

    results: Path
    folder: Path
    tune: Ran
    retrain: Ran


SHARED_NAME = "shared"
SHARED_SEED = "1"


def _ran(completed: subprocess.CompletedProcess) -> Ran:
    return Ran(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def shared_search(tmp_path_factory) -> SharedSearch:
    """Made by the first e2e test that asks for it (the e2e tier runs in one process)."""
    results = tmp_path_factory.mktemp("shared-search") / "results"
    tune = _ran(run_cli("tune", "--space", "cnn", "--dataset", "digits", "--trials", "4", "--max-epochs", "3",
                        "--grace-epochs", "1", "--name", SHARED_NAME, "--results", str(results),
                        "--seed", SHARED_SEED))
    assert tune.returncode == 0, tune.stdout + tune.stderr
    retrain = _ran(run_cli("best", "--results", str(results), "--name", SHARED_NAME, "--retrain", "--epochs", "2",
                           "--export", "torchscript,onnx"))
    assert retrain.returncode == 0, retrain.stdout + retrain.stderr
    return SharedSearch(results, results / SHARED_NAME, tune, retrain)


# --- the timing tier (`make check-timing`): each figure against its band, printed at the end ----

@dataclass(frozen=True)
class Figure:
    test: str
    what: str
    measured: float
    bound: float
    unit: str

    @property
    def within(self) -> bool:
        return self.measured <= self.bound


_FIGURES = pytest.StashKey[list]()


@pytest.fixture
def band(request):
    """For a timing test: band(what, measured, bound, unit) records a figure that must stay at or
    under its bound, and asserts it. `make check-timing` prints every figure against its band."""
    figures = request.config.stash.setdefault(_FIGURES, [])

    def check(what: str, measured: float, bound: float, unit: str = "s") -> None:
        figure = Figure(request.node.nodeid.split("::")[-1], what, float(measured), float(bound), unit)
        figures.append(figure)
        assert figure.within, f"{what}: {measured:.3g} {unit}, band <= {bound:.3g} {unit}"

    return check


def timing_table(figures: list[Figure]) -> str:
    rows = [f"| {f.test} | {f.what} | {f.measured:.3g} {f.unit} | <= {f.bound:.3g} {f.unit} | "
            f"{'yes' if f.within else '**no**'} |" for f in figures]
    return "\n".join(["| test | figure | measured | band | within |", "|---|---|---|---|---|", *rows])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = config.stash.get(_FIGURES, [])
    if not figures:
        return
    terminalreporter.write_sep("=", "timing figures against their bands")
    terminalreporter.write_line(timing_table(figures))
    out = os.environ.get("DIGITSEARCH_TIMING_REPORT")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        when = time.strftime("%Y-%m-%d %H:%M")
        Path(out).write_text(f"# make check-timing, {when}, host {socket.gethostname()}: one run of each test\n\n"
                             f"{timing_table(figures)}\n")
        terminalreporter.write_line(f"written to {out}")
