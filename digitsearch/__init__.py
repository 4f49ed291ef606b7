"""digitsearch: hyperparameter and architecture search for MNIST-like image classifiers.

The Python API (digitsearch.api) is importable from here: tune, best, pick, retrain,
load_model, and UserError. Its functions are loaded on first use, so `import digitsearch` (and the CLI's
`--help`) stays instant.
"""
from __future__ import annotations

from importlib import metadata

from digitsearch.errors import UserError

try:
    __version__ = metadata.version("digitsearch")
except metadata.PackageNotFoundError:  # a checkout that was never installed (python cli.py ...)
    __version__ = "0+unknown"

__all__ = ["UserError", "__version__", "best", "load_model", "pick", "retrain", "tune"]
_API = ("best", "experiment", "load_model", "pick", "retrain", "tune", "Retrained")


def __getattr__(name: str):
    if name in _API:
        from digitsearch import api

        return getattr(api, name)
    raise AttributeError(f"module 'digitsearch' has no attribute {name!r}")
