"""`digitsearch submit`: a digitsearch command sent to a Ray cluster as a Ray Job (Ray's Jobs
SDK, through the head's dashboard on port 8265), its logs streamed, its exit status returned.

The job's runtime_env carries this project (the checkout, or the installed package), so the
cluster runs the same code as the machine that submitted it; the cluster needs the
dependencies (torch, ray[default] on the head for its job server).
"""
from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from digitsearch.errors import UserError
from digitsearch.store import ray_token

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # digitsearch/
CHECKOUT = PACKAGE_DIR.parent
# what never needs to travel: environments, results, caches, VCS (Ray's upload limit is 500 MB)
EXCLUDES = [".venv", "venv", "results", ".git", "**/__pycache__", "*.egg-info", ".pytest_cache", "*.pt", "*.onnx"]
FINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 130}


def address_of(address: str | None) -> str:
    """--address, else RAY_ADDRESS when it names a dashboard (http...), else 127.0.0.1:8265."""
    env = os.environ.get("RAY_ADDRESS", "")
    return address or (env if env.startswith("http") else DEFAULT_ADDRESS)


def client(address: str | None):
    # before Ray reads its settings (on import): a token-authenticated head's job server wants the token
    ray_token.use_user_token()
    from ray.job_submission import JobSubmissionClient

    target = address_of(address)
    try:
        return JobSubmissionClient(target)
    except Exception as err:  # connection refused, auth, not a Ray dashboard: one line, exit 2
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "auth" in first.lower() and ray_token.user_token() is None:
            raise UserError(f"the Ray job server at {target} wants an authentication token and this machine has "
                            "none: copy the head's ~/.ray/auth_token here (or set RAY_AUTH_TOKEN)") from None
        raise UserError(f"cannot reach the Ray job server at {target} ({first}); is the head's dashboard "
                        f"running (`ray start --head --dashboard-host ...`, needs ray[default])?") from None


def runtime_env() -> dict:
    """Ship the checkout when running from one (spaces and all), else the installed package."""
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "search_spaces").is_dir():
        return {"working_dir": str(CHECKOUT), "excludes": EXCLUDES}
    return {"py_modules": [str(PACKAGE_DIR)], "excludes": EXCLUDES}


def job_command(args: list[str], cwd: Path) -> tuple[list[str], list[str]]:
    """The digitsearch arguments the job runs, and notes for the user. A search without
    --results writes to ./results of the submitting directory (absolute), not into the job's
    temporary working directory, which Ray deletes."""
    if not args:
        raise UserError("nothing to submit: write the command after --, e.g. `digitsearch submit -- tune --space cnn`")
    if args[0] in ("submit", "cluster", "dashboard"):
        raise UserError(f"`{args[0]}` runs on this machine; submit a command such as tune, best or report")
    notes = []
    if args[0] in ("tune", "best", "report") and not any(a == "--results" or a.startswith("--results=") for a in args):
        results = (cwd / "results").resolve()
        args = [*args, "--results", str(results)]
        notes.append(f"results go to {results} on the cluster (pass --results or --storage for a shared folder)")
    return args, notes


def entrypoint(args: list[str]) -> str:
    return "python -m digitsearch.cli " + shlex.join(args)


def submit(address: str | None, args: list[str], echo: Callable[[str], None], wait: bool = True) -> int:
    command, notes = job_command(args, Path.cwd())
    jobs = client(address)
    job_id = jobs.submit_job(entrypoint=entrypoint(command), runtime_env=runtime_env())
    for note in notes:
        echo(f"note: {note}")
    echo(f"submitted job {job_id} to {address_of(address)}: digitsearch {shlex.join(command)}")
    if not wait:
        echo(job_id)
        return 0
    return follow(jobs, job_id, echo)


def follow(jobs, job_id: str, echo: Callable[[str], None]) -> int:
    """Stream the job's logs until it ends; its driver's exit code (1 if Ray has none)."""

    async def tail() -> None:
        async for lines in jobs.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        echo(f"\nstopped following; the job goes on. `digitsearch submit --stop {job_id}` stops it")
        return 130
    return exit_code(jobs, job_id, echo)


def exit_code(jobs, job_id: str, echo: Callable[[str], None]) -> int:
    info = jobs.get_job_info(job_id)
    while str(info.status) not in FINAL and str(getattr(info.status, "value", "")) not in FINAL:
        time.sleep(0.5)  # the log stream can end a moment before the status does
        info = jobs.get_job_info(job_id)
    status = getattr(info.status, "value", str(info.status))
    code = info.driver_exit_code if info.driver_exit_code is not None else FINAL[status]
    echo(f"job {job_id} {status.lower()}" + (f": {info.message}" if status != "SUCCEEDED" and info.message else ""))
    return code


def status(address: str | None, job_id: str, echo: Callable[[str], None]) -> int:
    info = _info(client(address), job_id)
    status_name = getattr(info.status, "value", str(info.status))
    echo(f"job {job_id}: {status_name}" + (f" ({info.message})" if info.message else ""))
    return 0


def logs(address: str | None, job_id: str, echo: Callable[[str], None]) -> int:
    jobs = client(address)
    _info(jobs, job_id)
    sys.stdout.write(jobs.get_job_logs(job_id))
    return 0


def stop(address: str | None, job_id: str, echo: Callable[[str], None]) -> int:
    jobs = client(address)
    _info(jobs, job_id)
    stopped = jobs.stop_job(job_id)
    echo(f"job {job_id}: " + ("stop requested" if stopped else "already ended"))
    return 0


def _info(jobs, job_id: str):
    try:
        return jobs.get_job_info(job_id)
    except RuntimeError as err:
        if "does not exist" in str(err) or "404" in str(err):
            raise UserError(f"no job {job_id!r} on this cluster (`ray job list` lists them)") from None
        raise
