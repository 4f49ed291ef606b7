"""optuna.db as an Optuna storage that follows its experiment folder.

Ray pickles the searcher (OptunaSearch, with its study's storage) into Tune's round folder,
and `tune --resume` unpickles it. A plain RDBStorage would come back with the absolute
sqlite URL of the place the search started: in a renamed folder it cannot open (or, in a
copied one, writes the old folder's study). This one, unpickled while `expect_at(folder)`
is in force, opens the optuna.db of that folder instead. Imported only where a study is
opened (optuna is not cheap to import).
"""
from __future__ import annotations

from pathlib import Path

import optuna

from digitsearch.store.layout import STUDY_FILE

# the experiment folder this process resumes; None: a pickled storage keeps its own URL
_expected: Path | None = None


def url(folder: Path) -> str:
    return f"sqlite:///{folder.resolve() / STUDY_FILE}"


def expect_at(folder: Path | None) -> None:
    """From now on, a FolderStorage unpickled in this process opens `folder`'s optuna.db."""
    global _expected
    _expected = folder


class FolderStorage(optuna.storages.RDBStorage):
    """An RDBStorage on an experiment's optuna.db that re-points itself on unpickling."""

    def __init__(self, folder: Path):
        super().__init__(url(folder))

    def __setstate__(self, state: dict) -> None:
        if _expected is not None:
            state = {**state, "url": url(_expected)}
        super().__setstate__(state)
