"""The searcher's Optuna study: its name and its storage (optuna.db in the experiment folder).

The name is recorded in experiment.json when the search starts; experiments written before
that used the folder's name, which stays the fallback.
"""
from __future__ import annotations

from pathlib import Path

from digitsearch.store.experiments import read_meta
from digitsearch.store.layout import EXPERIMENT_FILE, STUDY_FILE


def name(folder: Path, meta: dict | None = None) -> str:
    if meta is None:
        meta = read_meta(folder) if (folder / EXPERIMENT_FILE).is_file() else {}
    return meta.get("study_name") or folder.name


def storage(folder: Path):
    """An Optuna RDBStorage on optuna.db (what OptunaSearch writes, what `report` reads)."""
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{folder / STUDY_FILE}")


def load(folder: Path):
    """The experiment's study, read back (optuna's own log lines kept quiet)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name(folder), storage=storage(folder))
