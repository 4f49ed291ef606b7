"""Tune's local storage writes each file whole (search.whole_files): a writer killed before it
closed a file leaves the old one in place, never a file cut short; and a snapshot cut short by
an older driver is found before Ray restores it."""
from __future__ import annotations

import json
import pickle

import pyarrow.fs as pafs

from digitsearch.search.whole_files import PARTIAL_PREFIX, cut_short, whole_file_storage


def test_a_file_is_replaced_only_when_its_writer_closes_it(tmp_path):
    fs, target = whole_file_storage(), tmp_path / "searcher-state-1.pkl"
    target.write_bytes(b"old, whole")
    stream = fs.open_output_stream(str(target))
    stream.write(b"new, half")  # the driver is killed here: the stream is never closed
    assert target.read_bytes() == b"old, whole"
    assert [p.name.startswith(PARTIAL_PREFIX) for p in tmp_path.iterdir()].count(True) == 1
    stream.write(b" and the rest")
    stream.close()
    assert target.read_bytes() == b"new, half and the rest"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_rays_folder_copy_through_it_writes_every_file(tmp_path):
    source = tmp_path / "staging"
    (source / "trial_1").mkdir(parents=True)
    (source / "experiment_state-1.json").write_text('{"trial_data": []}')
    (source / "trial_1" / "result.json").write_text("{}\n" * 1000)
    dest = tmp_path / "round"
    pafs.copy_files(str(source), str(dest), destination_filesystem=whole_file_storage())  # as Ray's sync does
    assert (dest / "experiment_state-1.json").read_text() == '{"trial_data": []}'
    assert (dest / "trial_1" / "result.json").read_text() == "{}\n" * 1000
    assert not [p for p in dest.rglob("*") if p.name.startswith(PARTIAL_PREFIX)]
    info = whole_file_storage().get_file_info(pafs.FileSelector(str(dest), recursive=True))
    assert sorted(i.base_name for i in info) == ["experiment_state-1.json", "result.json", "trial_1"]


def test_it_travels_to_the_trial_workers():
    fs = pickle.loads(pickle.dumps(whole_file_storage()))  # in each trial's StorageContext
    assert fs.type_name == "py::local-whole-files" and fs.equals(whole_file_storage())


def test_a_snapshot_cut_short_is_found_in_the_newest_of_each_kind(tmp_path):
    whole = pickle.dumps({"state": list(range(100))})
    (tmp_path / "experiment_state-2026-01-01_10-00-00.json").write_text(json.dumps({"trial_data": []}))
    (tmp_path / "search_gen_state-2026-01-01_10-00-00.json").write_bytes(whole)
    (tmp_path / "searcher-state-2026-01-01_10-00-00.pkl").write_bytes(whole)
    assert cut_short(str(tmp_path)) is None
    (tmp_path / "searcher-state-2026-01-01_09-00-00.pkl").write_bytes(b"")  # an older one: not read
    assert cut_short(str(tmp_path)) is None
    newer = tmp_path / "searcher-state-2026-01-01_11-00-00.pkl"
    newer.write_bytes(whole[: len(whole) // 2])
    assert cut_short(str(tmp_path)) == str(newer)
    newer.unlink()
    state = tmp_path / "experiment_state-2026-01-01_11-00-00.json"
    state.write_text('{"trial_data": [')
    assert cut_short(str(tmp_path)) == str(state)
