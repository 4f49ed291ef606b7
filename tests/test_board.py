"""TensorBoard and the Optuna study of a real tiny search, read back the way users' tools read them.

Event files through tensorboard's EventAccumulator; the HParams view through TensorBoard's own
HTTP API from `digitsearch dashboard`; the study through optuna.load_study.
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from conftest import ROOT, assert_one_line_error, run_cli
from digitsearch import spaces
from digitsearch.search.callbacks.board import UNUSED, TrialBoard, hparam_values
from digitsearch.store.layout import retrain_run_dir as run_dir
from digitsearch.store.layout import trial_runs_dir

SPACE = spaces.load("cnn")


@pytest.fixture(scope="module")
def search(shared_search):
    """The session's shared search (conftest.SharedSearch); --quiet is checked in test_faults."""
    table = pd.read_csv(shared_search.folder / "leaderboard.csv", dtype={"trial_id": str})
    return shared_search.results, shared_search.folder, table, shared_search.tune


def _read(run_folder) -> EventAccumulator:
    events = EventAccumulator(str(run_folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def _hparams(events: EventAccumulator) -> dict:
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(content)
    return {name: value.string_value if value.HasField("string_value") else value.number_value
            for name, value in start.hparams.items()}


@pytest.mark.e2e
def test_every_trial_has_its_scalars_and_hparams(search):
    _, folder, table, _ = search
    runs = trial_runs_dir(folder)
    assert sorted(p.name for p in runs.iterdir()) == sorted(table.trial_id)
    searched = {p.name for p in SPACE.params} - {"flip"}  # fixed off on the digits (not mirror-safe)
    trained = 0
    for row in table.itertuples():
        events = _read(runs / row.trial_id)
        assert set(_hparams(events)) == searched  # conditional parameters included, for every trial
        val_acc = events.Scalars("val_acc")
        if row.status in ("over budget", "infeasible"):  # never trained: val_acc 0 and the reason
            assert [(s.step, s.value) for s in val_acc] == [(0, 0.0)]
            assert "note/text_summary" in events.Tags()["tensors"]
            continue
        trained += 1
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds",
                "images_per_second", "latency_ms", "model_kb"} <= set(events.Tags()["scalars"])
        assert events.Scalars("latency_ms")[0].value == pytest.approx(row.latency_ms, rel=1e-4)
        assert [s.step for s in val_acc] == list(range(1, row.epochs + 1))  # every epoch the trial ran
        assert max(s.value for s in val_acc) == pytest.approx(row.val_acc, abs=1e-6)
        assert metadata.SESSION_END_INFO_TAG in events.PluginTagToContent(metadata.PLUGIN_NAME)
    assert trained >= 2


@pytest.mark.e2e
def test_conditional_parameters_are_unused_not_dropped(search):
    _, folder, table, _ = search
    configs = {row.trial_id: _hparams(_read(trial_runs_dir(folder) / row.trial_id)) for row in table.itertuples()}
    for trial_id, values in configs.items():
        depth = int(values["cnn.depth"])
        for block in range(1, 6):
            name = f"cnn.filters_{block}"
            if name in values:
                assert (values[name] == UNUSED) == (block > depth), (trial_id, name, values[name])
    assert isinstance(next(iter(configs.values()))["lr"], float)  # numbers stay numbers: an axis in the views


def test_hparam_values_types():
    config = {"cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "optimizer": "adam", "cnn.batchnorm": True,
              "lr": 0.01}
    values = hparam_values(SPACE, config)
    assert values["cnn.depth"] == 2.0 and values["cnn.filters_2"] == 64.0 and values["lr"] == 0.01
    assert values["optimizer"] == "adam" and values["cnn.batchnorm"] == "True"
    assert values["cnn.filters_3"] == UNUSED


def test_a_trial_is_in_the_hparams_view_from_its_start(tmp_path):
    """A trial ASHA stops (or that dies) before any result still has its HParams entry."""
    board = TrialBoard(tmp_path, SPACE)
    trial = SimpleNamespace(trial_id="abc123", config={"cnn.depth": 1, "cnn.filters_1": 16, "lr": 0.001})
    board.on_trial_start(0, [], trial)
    events = _read(trial_runs_dir(tmp_path) / "abc123")
    assert _hparams(events)["cnn.depth"] == 1.0
    assert events.Tags()["scalars"] == []
    board.on_experiment_end([])


@pytest.mark.e2e
def test_the_optuna_study_holds_every_trial(search):
    _, folder, table, _ = search
    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}")
    # full-length trials are COMPLETE with their best val_acc; the ones ASHA stopped are PRUNED,
    # their val_acc per epoch the intermediate values
    ended = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(ended) == len(table) == 4

    def score(t):
        return t.value if t.state == optuna.trial.TrialState.COMPLETE else max(t.intermediate_values.values())

    assert sorted(round(score(t), 6) for t in ended) == sorted(round(v, 6) for v in table.val_acc)


@pytest.fixture(scope="module")
def retrained(shared_search):
    return shared_search.folder  # retrained for 2 epochs by the shared fixture


@pytest.mark.e2e
def test_retrain_writes_curves_and_pictures(retrained):
    folder = retrained
    events = _read(run_dir(folder))
    assert [s.step for s in events.Scalars("train_loss")] == [1, 2]
    assert "test_accuracy" in events.Tags()["scalars"]
    tags = set(events.Tags()["images"])
    assert tags == {"test/confusion_matrix", "test/misclassified", "model/first_conv_filters",
                    "model/first_conv_activations"}
    for tag in tags:
        picture = Image.open(io.BytesIO(events.Images(tag)[-1].encoded_image_string))
        picture.load()  # decodes: a real PNG
        assert picture.width >= 400 and picture.height >= 150  # 32 filters in two rows: 800 x 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_dashboard(*args: str) -> tuple[subprocess.Popen, str]:
    # started with SIGINT ignored, as a shell's background job (or a pytest-xdist worker) starts
    # it: Ctrl-C must stop it all the same
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "dashboard", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    line = proc.stdout.readline()  # blocks until TensorBoard serves or the command fails
    if "http://127.0.0.1:" not in line:
        proc.kill()
        raise AssertionError(line + proc.stderr.read())
    return proc, line.split(" at ")[1].split()[0]


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
    out, _ = proc.communicate(timeout=30)
    return out


def _hparam_names_once_loaded(request: urllib.request.Request, patience_s: float = 60) -> set[str]:
    """The HParams plugin's parameter names, asked again until TensorBoard, which loads the event
    files in the background, has some (or `patience_s` has passed: the test's assertion then fails)."""
    deadline = time.time() + patience_s
    while True:
        with urllib.request.urlopen(request, timeout=30) as answer:
            names = {info["name"] for info in json.load(answer).get("hparamInfos", [])}
        if names or time.time() > deadline:
            return names
        time.sleep(1)


@pytest.mark.e2e
def test_dashboard_serves_the_trials_and_their_hparams(search):
    results, _, table, _ = search
    proc, url = _start_dashboard("--results", str(results), "--name", "shared", "--port", str(_free_port()))
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        request = urllib.request.Request(url + "data/plugin/hparams/experiment", method="POST",
                                         data=json.dumps({"experimentName": ""}).encode(),
                                         headers={"Content-Type": "application/json"})
        names = _hparam_names_once_loaded(request)
        assert {p.name for p in SPACE.params} - {"flip"} <= names  # flip: fixed off on the digits
        with urllib.request.urlopen(url + "data/runs", timeout=30) as answer:
            runs = set(json.load(answer))
        assert {f"trials/{trial_id}" for trial_id in table.trial_id} <= runs
    finally:
        out = _stop(proc)
    assert proc.returncode == 0 and "stopped" in out


@pytest.mark.e2e
def test_dashboard_bad_inputs_are_one_line(search, tmp_path):
    results, _, _, _ = search
    run = run_cli("dashboard", "--results", str(results), "--name", "nope")
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "no experiment 'nope'")
    run = run_cli("dashboard", "--results", str(tmp_path / "empty"))
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "no experiments in")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = run_cli("dashboard", "--results", str(results), "--port", str(taken.getsockname()[1]))
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "could not start", "--port")


@pytest.mark.e2e
def test_report_writes_markdown_and_decodable_pngs(search, retrained):
    results, folder, table, _ = search
    run = run_cli("report", "--results", str(results), "--name", "shared")
    assert run.returncode == 0, run.stdout + run.stderr
    out = folder / "report"
    text = (out / "report.md").read_text()
    for heading in ("## Leaderboard", "## Validation accuracy per epoch", "## What mattered", "## Families compared",
                    "## Accuracy against cost", "## The retrained model"):
        assert heading in text
    assert "| trial | family | origin | val acc | parameters | MFLOPs | latency ms (batch 1) |" in text  # the front
    assert "| rank | trial | family | key parameters | parameters | epochs run | s/epoch | val acc | status |" in text
    for trial_id in table.trial_id:
        assert f"| {trial_id} |" in text  # 4 trials: all in the top 10
    metrics = json.loads((folder / "final" / "metrics.json").read_text())
    assert f"Test accuracy **{metrics['test_accuracy']:.4f}**" in text
    assert "| precision | recall | f1 | support |" in text
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(["val_acc_by_epoch.png", "param_importances.png", "parallel_coordinates.png",
                           "confusion_matrix.png", "retrain_curves.png", "pareto_front.png"])
    for name in pngs:
        assert f"]({name})" in text  # every picture is in the report
        with Image.open(out / name) as picture:
            picture.load()
            assert picture.width >= 500 and picture.height >= 300


@pytest.mark.extended
@pytest.mark.e2e
def test_report_before_retrain_says_what_to_run(tmp_path, search):
    import shutil

    results, folder, _, _ = search
    copy = tmp_path / "results"
    shutil.copytree(folder, copy / folder.name, ignore=shutil.ignore_patterns("final", "report", "tensorboard"))
    run = run_cli("report", "--results", str(copy))
    assert run.returncode == 0, run.stdout + run.stderr
    text = (copy / folder.name / "report" / "report.md").read_text()
    assert "Not retrained yet: `digitsearch best --retrain`" in text
    missing = run_cli("report", "--results", str(copy), "--name", "nope")
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr, "no experiment 'nope'")


def test_a_second_retrain_replaces_the_first_runs_events(tmp_path):
    from digitsearch.viz import retrain_board

    history = [{"train_loss": 1.0, "train_acc": 0.5, "epoch_seconds": 1.0, "images_per_second": 10.0}]
    retrain_board.write(tmp_path, history)
    retrain_board.write(tmp_path, history * 2)
    assert len(list(run_dir(tmp_path).glob("events.out.tfevents.*"))) == 1
    assert [s.step for s in _read(run_dir(tmp_path)).Scalars("train_loss")] == [1, 2]
