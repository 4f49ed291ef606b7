"""The results folder: one folder per experiment, found by name or as the latest; its JSON files.

Every write goes through a temporary file and a rename, so an interrupted write never leaves
half a file; an existing experiment is never overwritten.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.store import record
from digitsearch.store.layout import BEST_FILE, EXPERIMENT_FILE, LEADERBOARD_FILE, relocate

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def default_name(space: str, dataset: str) -> str:
    """Unique and readable: space-dataset-timestamp."""
    stem = Path(dataset.rstrip("/")).stem if ("/" in dataset or dataset.endswith(".csv")) else dataset
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem) or "data"
    return f"{Path(space).stem}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UserError(f"experiment name {name!r} may only hold letters, digits, '.', '_' and '-'")
    return name


def check_free(results: Path, name: str) -> None:
    """Refuse a name in use before any work is done (create() makes the final, atomic check)."""
    if (results / check_name(name)).exists():
        raise UserError(f"experiment {name!r} already exists in {results}; choose another --name or remove "
                        f"{results / name}")


def create(results: Path, name: str) -> Path:
    """Make results/<name>; an existing experiment is never overwritten. The mkdir itself is the
    check, so of two searches started with the same --name at once exactly one gets the folder."""
    folder = results / check_name(name)
    results.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        raise UserError(f"experiment {name!r} already exists in {results}; choose another --name or remove {folder}")\
            from None
    return folder


def list_all(results: Path) -> list[Path]:
    """Experiments in `results`, oldest first."""
    if not results.is_dir():
        return []
    found = [p.parent for p in results.glob(f"*/{EXPERIMENT_FILE}")]
    return sorted(found, key=lambda p: read_json(p / EXPERIMENT_FILE).get("created", 0))


def resolve(results: Path, name: str | None) -> Path:
    """The named experiment, or the latest one."""
    if name:
        folder = results / name
        if not (folder / EXPERIMENT_FILE).is_file():
            known = ", ".join(p.name for p in list_all(results)) or "none"
            raise UserError(f"no experiment {name!r} in {results} (known: {known}); run `digitsearch tune` first")
        return folder
    every = list_all(results)
    if not every:
        raise UserError(f"no experiment in {results}; run `digitsearch tune --space cnn` first (or pass --results DIR)")
    return every[-1]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_json(path: Path, data: dict) -> None:
    # write then rename, so an interrupted write never leaves half a file behind
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def read_meta(folder: Path) -> dict:
    """experiment.json: the request, the data, the rounds, the status; its paths as seen from
    where the folder is now (layout.relocate: a copied or renamed experiment reads its own files)."""
    path = folder / EXPERIMENT_FILE
    return relocate(record.checked(record.migrate(read_json(path)), str(path)), folder)


def write_meta(folder: Path, meta: dict) -> None:
    """experiment.json, checked against the record's schema (store.record) before it is written."""
    path = folder / EXPERIMENT_FILE
    write_json(path, record.checked(meta, str(path)))


def read_best(folder: Path) -> dict:
    path = folder / BEST_FILE
    if not path.is_file():
        raise UserError(
            f"experiment {folder.name!r} has no completed trial (no {BEST_FILE}); "
            f"look at {folder / LEADERBOARD_FILE} for errors, or run a new search"
        )
    return read_json(path)
