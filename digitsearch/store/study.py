"""The searcher's Optuna study: its name and its storage (optuna.db in the experiment folder).

The name is recorded in experiment.json when the search starts and never changes, so a copied,
renamed or moved experiment still finds its study; experiments written before that used the
folder's name at the time, which experiment.json's `name` recorded (experiments.read_meta
keeps it as the study's name).
"""
from __future__ import annotations

from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.store.experiments import read_meta
from digitsearch.store.layout import EXPERIMENT_FILE, STUDY_FILE


def name(folder: Path, meta: dict | None = None) -> str:
    if meta is None:
        meta = read_meta(folder) if (folder / EXPERIMENT_FILE).is_file() else {}
    return meta.get("study_name") or folder.name


def storage(folder: Path):
    """An Optuna RDBStorage on optuna.db (what OptunaSearch writes, what `report` reads), one
    that Ray's pickled searcher re-points to the folder `expect_at` names (study_db)."""
    from digitsearch.store.study_db import FolderStorage

    return FolderStorage(folder)


def expect_at(folder: Path) -> None:
    """`--resume`: the searcher Ray restores opens this folder's optuna.db, wherever the
    search started (a renamed or moved experiment)."""
    from digitsearch.store import study_db

    study_db.expect_at(folder)


def load(folder: Path):
    """The experiment's study, read back (optuna's own log lines kept quiet). A study that is
    not in optuna.db (a folder copied without it, or under another name) is a UserError."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wanted, where = name(folder), storage(folder)
    try:
        return optuna.load_study(study_name=wanted, storage=where)
    except KeyError:  # optuna's "Record does not exist."
        known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(where)) or "none"
        raise UserError(f"experiment {folder.name!r}: its Optuna study {wanted!r} is not in "
                        f"{folder / STUDY_FILE} (studies there: {known}); was the folder copied without "
                        f"its {STUDY_FILE}?") from None
