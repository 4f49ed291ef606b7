"""The Ray authentication token a user has for their cluster, where Ray keeps it: in the
environment (RAY_AUTH_TOKEN), in the file RAY_AUTH_TOKEN_PATH names, or in ~/.ray/auth_token
(where `ray start` and `ray get-auth-token --generate` write it). Ray sends it only with
RAY_AUTH_MODE=token, which it sets by itself only for `ray.init(address="auto")`: a driver that
names the cluster's address, or `submit` to its job server, would go without it."""
from __future__ import annotations

import os
from pathlib import Path

AUTH_MODE = "RAY_AUTH_MODE"


def user_token() -> str | None:
    """Where this machine's token is (the variable's name or the file's path), None when nowhere."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), Path.home() / ".ray" / "auth_token"):
        if path and _holds_text(Path(path).expanduser()):
            return str(path)
    return None


def use_user_token() -> str | None:
    """RAY_AUTH_MODE=token for this process and its children when the user has a token and has not
    set the mode (one set by hand is left as it is); where the token is, or None. A process whose
    Ray already read its settings reads them again (search.local_ray)."""
    found = user_token()
    if found is None or os.environ.get(AUTH_MODE) is not None:
        return None
    os.environ[AUTH_MODE] = "token"
    return found


def _holds_text(path: Path) -> bool:
    try:
        return path.is_file() and bool(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False
