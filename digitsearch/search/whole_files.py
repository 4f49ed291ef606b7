"""Tune's storage on a local disk, written so that a killed driver never leaves a file cut short.

Ray copies its experiment snapshot (experiment_state-*.json, searcher-state-*.pkl,
search_gen_state-*.json) from the driver's staging folder to the round's folder about once a
second, with pyarrow's copy_files, which writes each file in place. A SIGKILL during a copy
left the newest searcher-state-*.pkl empty; `--resume` then failed to unpickle it, and Ray's
failed restore wrote a new, empty snapshot after it: the round's trials were lost to Tune.
(CI hit it in tests/test_resume_kill.py.)

Here every file goes to a hidden name beside its place and is renamed over it once complete
(os.replace: atomic on one filesystem), so the round's folder holds the old file or the new
one, whole. Tune takes this filesystem through its public `storage_filesystem` (RunConfig,
Tuner.restore); trial checkpoints uploaded by the workers get the same guarantee.
"""
from __future__ import annotations

import glob
import io
import json
import os
import uuid

import pyarrow.fs as pafs
from pyarrow import PythonFile

PARTIAL_PREFIX = ".partial-"  # a file still being written: never matched by Tune's globs


def whole_file_storage() -> pafs.PyFileSystem:
    """The local filesystem, with output files published whole (the module's docstring)."""
    return pafs.PyFileSystem(WholeFilesHandler())


class _PublishedOnClose(io.FileIO):
    """A file written under a hidden name and renamed to `path` when closed after a
    complete write; a write that failed leaves the old file and removes the partial one."""

    def __init__(self, path: str):
        folder, name = os.path.split(path)
        self.final_path = path
        self.partial_path = os.path.join(folder, f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:8]}-{name}")
        self.failed = False
        super().__init__(self.partial_path, "wb")

    def write(self, data) -> int:
        try:
            return super().write(data)
        except BaseException:
            self.failed = True
            raise

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self.failed:
            os.remove(self.partial_path)
        else:
            os.replace(self.partial_path, self.final_path)


class WholeFilesHandler(pafs.FileSystemHandler):
    """pyarrow's LocalFileSystem, but for how output streams are written."""

    def __init__(self):
        self.local = pafs.LocalFileSystem()

    def __reduce__(self):  # the trial workers get the filesystem in their StorageContext
        return (WholeFilesHandler, ())

    def __eq__(self, other) -> bool:
        return isinstance(other, WholeFilesHandler)

    def __ne__(self, other) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "local-whole-files"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the root folder")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with self.local.open_input_stream(src) as source, self.open_output_stream(dest, None) as target:
            target.write(source.read())

    def open_input_stream(self, path: str):
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str):
        return self.local.open_input_file(path)

    def open_output_stream(self, path: str, metadata):
        return PythonFile(_PublishedOnClose(path), mode="w")

    def open_append_stream(self, path: str, metadata):
        return self.local.open_append_stream(path)


# Tune's snapshot: a session's files, of which a restore reads the newest of each kind
SNAPSHOT_PATTERNS = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl")
PICKLE_STOP = b"."  # the opcode every complete pickle ends with


def cut_short(round_dir: str) -> str | None:
    """The newest snapshot file of a local round that a kill cut short (written before the
    round's files were written whole), or None. Ray would fail to restore it, then write an
    empty snapshot after it."""
    for pattern in SNAPSHOT_PATTERNS:
        saved = sorted(glob.glob(os.path.join(round_dir, pattern)))
        if saved and not _whole(saved[-1]):
            return saved[-1]
    return None


def _whole(path: str) -> bool:
    with open(path, "rb") as file:
        data = file.read()
    if not os.path.basename(path).startswith("experiment_state"):
        return data.endswith(PICKLE_STOP)  # search_gen_state-*.json is a pickle too (Ray's _atomic_save)
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
