"""experiment.json is a typed record (store.record): every experiment this project has written
reads, in the current schema; a file that does not fit is one line, on read and on write."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT, assert_one_line_error, run_in_process, write_record
from digitsearch.errors import UserError
from digitsearch.store import experiments, record
from digitsearch.store.layout import RUNTIME_KEYS

EXAMPLES = sorted(p.parent for p in (ROOT / "results" / "examples").glob("*/experiment.json"))


def test_every_example_experiment_reads_in_the_current_schema():
    assert len(EXAMPLES) >= 10
    for folder in EXAMPLES:
        meta = experiments.read_meta(folder)
        assert meta["schema_version"] == record.SCHEMA_VERSION, folder
        assert meta["rounds"] and meta["study_name"] and meta["space_path"], folder
        assert not set(RUNTIME_KEYS) & set(meta), folder  # how an old command ran is not the search's


def test_a_file_from_before_rounds_and_study_names_gets_both(tmp_path):
    folder = write_record(tmp_path / "first", trials=4)
    old = json.loads((folder / "experiment.json").read_text())
    for key in ("rounds", "study_name", "space_path"):
        old.pop(key)
    (folder / "experiment.json").write_text(json.dumps({**old, "space": "lenet", "verbose": True}))
    meta = experiments.read_meta(folder)
    assert meta["rounds"] == [{"dir": "tune", "trials": 4}]
    assert meta["study_name"] == "first" and meta["space_path"] == "lenet" and "verbose" not in meta


def test_a_record_is_written_only_as_the_schema_has_it(tmp_path):
    folder = write_record(tmp_path / "exp")
    meta = experiments.read_meta(folder)
    experiments.write_meta(folder, {**meta, "status": "interrupted"})
    assert experiments.read_meta(folder)["status"] == "interrupted"
    with pytest.raises(UserError, match="trials: Input should be a valid integer"):
        experiments.write_meta(folder, {**meta, "trials": "many"})
    with pytest.raises(UserError, match="stauts: Extra inputs are not permitted"):
        experiments.write_meta(folder, {**meta, "stauts": "finished"})
    assert experiments.read_meta(folder)["status"] == "interrupted"  # the file as it was


def test_a_record_that_does_not_fit_is_one_line_for_a_command(tmp_path):
    results = tmp_path / "results"
    write_record(results / "edited", trials="many")
    run = run_in_process("report", "--results", str(results), "--name", "edited")
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "experiment.json is not an experiment record", "trials")
    write_record(results / "newer", schema_version=record.SCHEMA_VERSION + 1)
    run = run_in_process("report", "--results", str(results), "--name", "newer")
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "newer digitsearch", "upgrade")


