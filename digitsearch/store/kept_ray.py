"""Where a local Ray kept up between commands (`digitsearch ray up`, search.local_ray) is written
down: its address, token and `ray start` process, in a file only its owner can read."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE_ENV = "DIGITSEARCH_RAY_FILE"  # where `ray up` writes the kept-up Ray's address and token
NOT_KEPT = "none"  # DIGITSEARCH_RAY_FILE=none: every search starts its own Ray (the bench's start-up does)


@dataclass(frozen=True)
class KeptUp:
    """A local Ray `digitsearch ray up` started: where it is, its token, its `ray start` process."""

    address: str
    token: str
    pid: int
    started: float
    temp_dir: str  # its own: a bare ray.init() elsewhere finds no ray_current_cluster of it in /tmp/ray


def state_file() -> Path | None:
    """$DIGITSEARCH_RAY_FILE, else ~/.cache/digitsearch/ray.json; None when it says `none`."""
    given = os.environ.get(STATE_FILE_ENV)
    if given == NOT_KEPT:
        return None
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digitsearch" / "ray.json"
    return Path(given or default)


def read_state(path: Path) -> KeptUp | None:
    try:
        return KeptUp(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(path: Path, kept: KeptUp) -> None:
    # created readable by its owner alone, never for a moment by others: the token lets whoever
    # reads it run code in that Ray (an older file's mode is set again before it is rewritten)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(json.dumps(asdict(kept)))
