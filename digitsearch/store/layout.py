"""Where everything of an experiment lives: the one place its file and folder names are written.

results/<name>/
  experiment.json   what was asked (space, dataset, budget), what the data were, the study's name
  tune/             Ray Tune's experiment folder (trial logs, best-epoch checkpoints); with
                    --storage it lives at <storage>/<name>/tune instead. `--resume --add-trials`
                    adds rounds tune-2/, tune-3/, ... beside it, searching on in the same study
  finished.txt      the ledger: ids of the trials that ended, written as each ends (what --resume counts)
  optuna.db         the searcher's Optuna study (SQLite)
  leaderboard.csv   one row per trial, best first
  best.json         the best trial: config, metrics, checkpoint
  final/            written by `best --retrain`; final-<trial>/ by `best --trial ID --retrain`
  report/           written by `digitsearch report`
  tensorboard/      TensorBoard runs: trials/<trial_id>/ (scalars, HParams), final/ (the retrain)
"""
from __future__ import annotations

from pathlib import Path

EXPERIMENT_FILE = "experiment.json"
# options of how a command ran (the terminal, the cluster, --resume), not of what was searched:
# experiment.json does not keep them (files written before dropped them: store.record.migrate)
RUNTIME_KEYS = ("address", "verbose", "quiet", "resume", "add_trials")
BEST_FILE = "best.json"
LEADERBOARD_FILE = "leaderboard.csv"
LEDGER_FILE = "finished.txt"
# what the search added over its best starting point, and why it stopped (search.planner)
SEARCH_PLAN_FILE = "search_plan.json"
STUDY_FILE = "optuna.db"
TENSORBOARD_DIR = "tensorboard"
TRIAL_RUNS_DIR = "trials"
FINAL_DIR = "final"
REPORT_DIR = "report"
FIRST_ROUND = "tune"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.pt"
PARAMS_FILE = "params.json"  # Tune's record of a trial's config, in the trial's folder


def final_dir(folder: Path, trial: str | None = None) -> Path:
    """final/ for the best trial; final-<id>/ for another one (e.g. a hand-made starting point
    retrained beside the best for comparison)."""
    return folder / (FINAL_DIR if trial is None else f"{FINAL_DIR}-{trial}")


def trial_runs_dir(folder: Path) -> Path:
    """TensorBoard runs of the search's trials, one folder per trial id."""
    return folder / TENSORBOARD_DIR / TRIAL_RUNS_DIR


def retrain_run_dir(folder: Path, run: str = FINAL_DIR) -> Path:
    """The TensorBoard run of a retrain: final/, or final-<trial>/ beside it."""
    return folder / TENSORBOARD_DIR / run


def is_uri(storage: str) -> bool:
    """s3://..., gs://..., file://...: storage that pathlib cannot read."""
    return "://" in storage


def tune_root(folder: Path, storage: str | None) -> str:
    """Where Tune's rounds live: the experiment folder, or <storage>/<name> (a folder every
    node reaches, or a URI such as s3://bucket/prefix)."""
    if not storage:
        return str(folder)
    if is_uri(storage):
        return f"{storage.rstrip('/')}/{folder.name}"
    return str(Path(storage).expanduser().resolve() / folder.name)


def relocate(meta: dict, folder: Path) -> dict:
    """experiment.json as read from where it lies now: a copied, renamed or moved experiment
    folder finds its own Tune rounds, not the place it was written at.

    Without --storage the rounds live in the experiment folder, so `tune_root` is that folder,
    wherever it is now. A --storage URI stays as given; a --storage folder too, unless it is
    gone and the rounds were brought into the experiment folder. `name` becomes the folder's;
    the study keeps the name it was created under (`study_name`).
    """
    meta = dict(meta)
    here = str(folder.resolve())
    meta["name"] = folder.name
    stored, storage = meta.get("tune_root"), meta.get("storage")
    if not stored or not storage:
        meta["tune_root"] = here
    elif not is_uri(stored) and not Path(stored).exists() and (folder / FIRST_ROUND).exists():
        meta["tune_root"] = here
    return meta


def rounds(meta: dict) -> list[dict]:
    """The experiment's Tune rounds, first to last: [{"dir": "tune", "trials": 12}, ...]."""
    return meta["rounds"]


def round_path(meta: dict, round_: dict) -> str:
    return f"{meta['tune_root'].rstrip('/')}/{round_['dir']}"
