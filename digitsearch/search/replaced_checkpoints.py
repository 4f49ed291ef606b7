"""Give a restored round the checkpoints its snapshot names, when a kill left newer ones.

A trial keeps one checkpoint, its best epoch's (CheckpointConfig(num_to_keep=1)): when a
later epoch beats it, Tune registers the new checkpoint_N and deletes the old one at once,
but writes the experiment snapshot that names checkpoint_N only on its next step. A driver
SIGKILLed in between leaves a snapshot that names a checkpoint that is gone, and Ray's
restore of that trial fails ("Could not recover from checkpoint as it does not exist on
storage anymore"), twice with the retry: the trial ends as an error, its study trial FAIL,
and the leaderboard points at the deleted checkpoint. (CI hit it in tests/test_faults.py.)

Before Tune restores a round, each unfinished trial of its newest snapshot whose named
checkpoint is gone gets its newest complete checkpoint under that name: it continues from
its real best epoch (the trainable reads the epoch from the checkpoint itself), and Tune
names its next checkpoints after it as it would have. Newer checkpoints the snapshot does not
know are removed once one of them has taken the name (a trial keeps one checkpoint). Tune's
own record of that checkpoint keeps the older epoch's metrics; its training_iteration, which
ASHA counts rungs in, then lags the trial's epoch by the epochs the kill hid.

Ray internals read here, as TuneController.resume reads them (a driver killed in that window,
tests/test_resume_kill.py, fails without them): the newest experiment state's `trial_data` (a
trial's JSON state and run metadata), Trial.from_json_state, restore_run_metadata and the
checkpoint manager's latest_checkpoint_result.
"""
from __future__ import annotations

import posixpath
import re

import pyarrow.fs as pafs

CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")  # Tune's StorageContext._make_checkpoint_dir_name


def restore_replaced(round_path: str, filesystem: pafs.FileSystem | None, complete_file: str) -> list[str]:
    """Repair the round at `round_path` (a local path or a URI) as the module's docstring says;
    `complete_file`: the file every complete checkpoint holds. The ids of the trials whose
    checkpoint was replaced by a newer one."""
    from ray.train._internal.storage import get_fs_and_path

    fs, root = get_fs_and_path(round_path, filesystem)
    return [trial_id for trial_id, trial_dir, named in _named_checkpoints(fs, root)
            if _take_newest(fs, posixpath.join(root, trial_dir), named, complete_file)]


def _named_checkpoints(fs: pafs.FileSystem, root: str) -> list[tuple[str, str, str | None]]:
    """(trial id, trial folder, name of its latest checkpoint or None) of each unfinished trial
    in the round's newest snapshot; none when there is no snapshot."""
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
    from ray.tune.experiment import Trial
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    newest = _find_newest_experiment_checkpoint(root, fs=fs)
    if newest is None:
        return []
    with fs.open_input_stream(newest) as stream:
        state = _loads_with_cloudpickle(stream.readall())
    named = []
    for trial_json, run_metadata in state["trial_data"]:
        trial = Trial.from_json_state(trial_json, stub=True)
        if trial.status == Trial.TERMINATED:
            continue  # its checkpoints were all registered before this snapshot
        trial.restore_run_metadata(run_metadata)
        latest = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
        name = posixpath.basename(latest.checkpoint.path.rstrip("/")) if latest is not None else None
        named.append((trial.trial_id, trial.storage.trial_dir_name, name))
    return named


def _take_newest(fs: pafs.FileSystem, trial_dir: str, named: str | None, complete_file: str) -> bool:
    """Put the trial's newest complete checkpoint the snapshot does not know under `named` and
    remove the other unknown ones; True if one took the name. With no name (the snapshot saw no
    checkpoint of the trial) Tune starts the trial over, and they all go."""
    floor = int(CHECKPOINT_DIR.match(named).group(1)) if named is not None else -1
    unknown = [path for index, path in _checkpoints(fs, trial_dir) if index > floor]
    complete = [path for path in unknown if _exists(fs, posixpath.join(path, complete_file))]
    newest = complete[-1] if complete and named is not None else None
    if newest is not None:
        target = posixpath.join(trial_dir, named)
        if _exists(fs, target):
            fs.delete_dir(target)  # the kill came between the new checkpoint's upload and the old one's removal
        _move_dir(fs, newest, target)
    for path in unknown:
        if path != newest:
            fs.delete_dir(path)
    return newest is not None


def _move_dir(fs: pafs.FileSystem, source: str, target: str) -> None:
    try:
        fs.move(source, target)
    except (OSError, NotImplementedError):  # object stores move files, not folders
        pafs.copy_files(source, target, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(source)


def _checkpoints(fs: pafs.FileSystem, trial_dir: str) -> list[tuple[int, str]]:
    """(index, path) of the trial folder's checkpoint_N folders, oldest first."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(trial_dir))
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), info.path) for info in infos
             if info.type == pafs.FileType.Directory and (m := CHECKPOINT_DIR.match(info.base_name))]
    return sorted(found)


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound
