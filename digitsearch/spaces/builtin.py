"""Finding spaces: the built-in ``search_spaces/`` folder, and :func:`load` by name or path."""

from __future__ import annotations

from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.spaces.folder import BUILTIN_DIR
from digitsearch.spaces.model import SearchSpace
from digitsearch.spaces.parser import load_file

_YAML_SUFFIXES = (".yaml", ".yml")


def _builtin_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    folder = BUILTIN_DIR
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            if f.suffix in _YAML_SUFFIXES and f.is_file() and not f.name.startswith("."):
                out.setdefault(f.stem, f)
    return out


def list_spaces() -> dict[str, str]:
    """Built-in space name -> its one-line description, sorted by name."""
    return {name: load(name).description for name in _builtin_files()}


def load(name_or_path: str | Path) -> SearchSpace:
    """Load a built-in space by name (``"cnn"``) or a YAML file by path."""
    text = str(name_or_path)
    builtins = _builtin_files()
    if not isinstance(name_or_path, Path) and text in builtins:
        return load_file(builtins[text], name=text, shown=builtins[text], load_included=load)
    path = Path(text).expanduser()
    looks_like_path = (
        isinstance(name_or_path, Path)
        or path.suffix.lower() in _YAML_SUFFIXES
        or "/" in text
        or "\\" in text
        or path.exists()
    )
    if not looks_like_path:
        known = ", ".join(builtins) or "(none found)"
        raise UserError(
            f"unknown search space '{text}': built-in spaces are {known}; "
            f"or give a path to a YAML file (e.g. ./my_space.yaml)"
        )
    if not path.exists():
        hint = ""
        if path.stem in builtins and path.parent == Path("."):
            hint = f", or use the built-in space by its bare name '{path.stem}'"
        raise UserError(f"{text}: search space file not found; check the path{hint}")
    if not path.is_file():
        raise UserError(f"{text}: not a file; give the path of a search space YAML file")
    return load_file(path, name=path.stem, shown=text, load_included=load)
