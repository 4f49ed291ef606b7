"""Where the built-in spaces are: search_spaces/ in a checkout, the package digitsearch.search_spaces in a wheel."""

from __future__ import annotations

from pathlib import Path


def _find_builtin_dir() -> Path:
    # a checkout (or editable install): <root>/digitsearch/spaces/folder.py -> <root>/search_spaces
    checkout = Path(__file__).resolve().parents[2] / "search_spaces"
    if checkout.is_dir() and any(checkout.glob("*.y*ml")):
        return checkout
    try:  # a wheel: the folder ships as the package digitsearch.search_spaces
        from importlib.resources import files

        return Path(str(files("digitsearch.search_spaces")))
    except (ImportError, ModuleNotFoundError, TypeError):
        return checkout


#: The folder holding the built-in search space files (``<name>.yaml``).
BUILTIN_DIR: Path = _find_builtin_dir()
