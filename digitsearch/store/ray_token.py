"""The Ray authentication token a user has for their cluster, where Ray keeps it: in the
environment (RAY_AUTH_TOKEN), in the file RAY_AUTH_TOKEN_PATH names, or in ~/.ray/auth_token
(where `ray start` and `ray get-auth-token --generate` write it). Ray sends it only with
RAY_AUTH_MODE=token, which it sets by itself only for `ray.init(address="auto")`: a driver that
names the cluster's address, or `submit` to its job server, would go without it."""
from __future__ import annotations

import os
import secrets
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


def token_file() -> Path:
    """Where Ray keeps this user's token when neither variable names one."""
    return Path.home() / ".ray" / "auth_token"


def keep_token_private() -> Path | None:
    """The token file a private local Ray will read, readable by the user alone. Ray writes
    ~/.ray/auth_token with the process's umask (world-readable under the usual 022) when it finds
    no token; written first here with mode 600, or an existing one narrowed to 600, it is the
    user's secret alone. Nothing is done where the token comes from RAY_AUTH_TOKEN or
    RAY_AUTH_TOKEN_PATH, or RAY_AUTH_MODE turns tokens off (the user's own choices). The file's
    path, or None."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip() or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return None
    if os.environ.get(AUTH_MODE, "token").lower() != "token":  # authentication turned off by the user
        return None
    path = token_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _narrow(path)
        return path
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_hex(32))
    return path


def _narrow(path: Path) -> None:
    """Mode 600 for a token file group or others can read (one that is not the user's is left as it is)."""
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass
