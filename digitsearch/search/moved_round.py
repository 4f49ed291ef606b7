"""Re-point a Tune round that was moved (a renamed or moved experiment folder) before Ray
restores it.

Ray 2.60 moves the restored trials to the round's new place (TuneController._restore_trials),
but its search generator comes back with the StorageContext of the place the round started
(SearchGenerator.restore_from_dir: `self._experiment = state["experiment"]`), so every trial
it creates after the restore would write to the old folder: they fail ("Unable to set up
cluster storage") where it is gone, or land in the old copy where it is not. The newest
saved generator state is rewritten with the round's parent as its storage path, the way
Ray writes it (ray.tune.utils.util._atomic_save).
"""
from __future__ import annotations

from pathlib import Path


def repoint(round_dir: Path) -> bool:
    """Make the newest search-generator state of `round_dir` (a local round) name it as its
    place; True if it had named another."""
    from ray.tune.search.search_generator import SearchGenerator
    from ray.tune.utils.util import _atomic_save, _load_newest_checkpoint

    pattern = SearchGenerator.CKPT_FILE_TMPL.format("*")
    saved = sorted(round_dir.glob(pattern))
    if not saved:
        return False  # nothing saved: the round starts over, with storage from this run
    state = _load_newest_checkpoint(str(round_dir), pattern)
    experiment = state.get("experiment") if isinstance(state, dict) else None
    here = str(round_dir.parent.resolve())
    storages = [getattr(experiment, "storage", None), (getattr(experiment, "spec", None) or {}).get("storage")]
    moved = [s for s in storages if s is not None and s.storage_fs_path != here]
    if not moved:
        return False
    for storage in moved:
        storage.storage_fs_path = here
    newest = max(saved).name  # the one _load_newest_checkpoint read
    _atomic_save(state=state, checkpoint_dir=str(round_dir), file_name=newest, tmp_file_name=f"tmp-{newest}")
    return True
