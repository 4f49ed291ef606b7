"""Every family's own space, the space across families, and the tasks they serve, searched
through the real command line (tiny: 2 trials of 1 epoch on the bundled digits, or the
addition task), plus the bad pairings that must end in one line before Ray starts."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from conftest import assert_one_line_error, run_cli
from digitsearch import models
from digitsearch.cli import app
from digitsearch.final import export

IMAGE_FAMILIES = ["lenet", "vgg", "resnet", "lstm"]


def tiny_search(results, name: str, *args: str, trials: int = 2, epochs: int = 1):
    run = run_cli("tune", "--trials", str(trials), "--max-epochs", str(epochs), "--name", name,
                  "--results", str(results), *args, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    table = pd.read_csv(results / name / "leaderboard.csv")
    assert len(table) == trials
    return table, run


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_each_image_family_space_searches(family, tmp_path):
    table, _ = tiny_search(tmp_path, family, "--space", family, "--dataset", "digits")
    assert set(table["family"]) == {family}
    trained = table[table["status"].isin(["completed", "stopped early"])]
    # one epoch on 1,150 digits proves the pipeline, not the net: a trained trial has a real
    # validation accuracy and its best epoch's checkpoint on disk
    assert len(trained) >= 1 and trained["val_acc"].between(0, 1).all(), table.to_string()
    assert all((tmp_path / family / "tune").glob("trial_*/checkpoint_*/model.pt"))
    assert trained["checkpoint"].map(lambda p: (Path(p) / "model.pt").is_file()).all()
    assert any(c.startswith(f"{family}.") for c in table.columns)


def _saved_mobilenet(path):
    model = models.create("transfer", backbone="mobilenet_v3_small", init="scratch", input_size=32)
    torch.save(model.state_dict(), path)
    return model


def test_transfer_space_from_a_saved_state_dict(tmp_path):
    saved = _saved_mobilenet(tmp_path / "pretrained.pt")
    table, _ = tiny_search(tmp_path, "from-checkpoint", "--space", "transfer", "--dataset", "digits",
                           "--set", f"transfer.init=checkpoint:{tmp_path / 'pretrained.pt'}",
                           "--set", "transfer.backbone=mobilenet_v3_small", "--set", "transfer.input_size=32")
    assert set(table["transfer.init"]) == {f"checkpoint:{(tmp_path / 'pretrained.pt').resolve()}"}
    assert (table["status"].isin(["completed", "stopped early"])).all(), table.to_string()
    # the retrained model starts from the same file and exports without needing it again
    run = run_cli("best", "--results", str(tmp_path), "--name", "from-checkpoint", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    (tmp_path / "pretrained.pt").unlink()
    model, meta = export.load_model(tmp_path / "from-checkpoint" / "final" / "model.pt")
    assert meta["model_args"]["init"] == "scratch" and meta["family"] == "transfer"
    assert saved is not None and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_transfer_space_from_scratch(tmp_path):
    table, _ = tiny_search(tmp_path, "scratch", "--space", "transfer", "--dataset", "digits",
                           "--set", "transfer.init=scratch", "--set", "transfer.backbone=mobilenet_v3_small",
                           "--set", "transfer.input_size=32")
    assert set(table["transfer.init"]) == {"scratch"}
    assert "transfer.freeze" not in table.columns  # freeze only applies to pretrained weights
    assert (table["status"].isin(["completed", "stopped early"])).all(), table.to_string()


def test_seq2seq_searches_and_retrains_on_addition(tmp_path):
    # the space's own parameters, narrowed to small LSTMs to keep the suite quick
    table, run = tiny_search(tmp_path, "adder", "--space", "seq2seq", "--dataset", "addition",
                             "--set", "seq2seq.encoder_width=64", "--set", "seq2seq.decoder_width=64",
                             "--set", "seq2seq.encoder_layers=1", "--set", "seq2seq.decoder_layers=1")
    assert "test sequences" in run.stdout and "12 symbols" in run.stdout
    assert set(table["family"]) == {"seq2seq"} and (table["val_acc"] >= 0).all()
    run = run_cli("best", "--results", str(tmp_path), "--name", "adder", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "exact-match accuracy" in run.stdout
    final = tmp_path / "adder" / "final"
    predictions = pd.read_csv(final / "predictions.csv", keep_default_na=False, dtype=str)
    assert list(predictions.columns) == ["question", "answer", "predicted", "correct"]
    assert len(predictions) == 6554
    first = predictions.iloc[0]
    a, b = (int(v) for v in first["question"].split("+"))
    assert int(first["answer"]) == a + b  # the held-out answers are real sums
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["task"] == "sequence" and metrics["test_sequences"] == 6554
    correct = (predictions["correct"] == "True").mean()
    assert metrics["test_accuracy"] == pytest.approx(correct)


def test_numbers_dataset_through_search_and_retrain(tmp_path):
    """28x84 images of 0..255, 256 classes, end to end with the LeNet family."""
    table, run = tiny_search(tmp_path, "numbers", "--space", "lenet", "--dataset", "numbers", "--base", "digits",
                             trials=1)
    assert "256 classes" in run.stdout
    run = run_cli("best", "--results", str(tmp_path), "--name", "numbers", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    model, meta = export.load_model(tmp_path / "numbers" / "final" / "model.pt")
    assert meta["image_size"] == [28, 84] and len(meta["class_names"]) == 256
    assert model(torch.zeros(1, 1, 28, 84)).shape == (1, 256)


def test_one_space_across_families(tmp_path):
    """The issue's command: 16 trials of at least 4 families, a family column in the leaderboard."""
    table, run = tiny_search(tmp_path, "all", "--space", "all", "--dataset", "digits", trials=16, epochs=3)
    assert table["family"].nunique() >= 4, table[["family", "status", "val_acc"]].to_string()
    assert (table["status"] != "error").all(), table[["family", "status", "note"]].to_string()
    for family in table["family"].unique():  # each row only has its own family's parameters
        rows = table[table["family"] == family]
        others = [c for c in table.columns if "." in c and not c.startswith(f"{family}.")]
        assert rows[others].isna().all().all(), family
    best = json.loads((tmp_path / "all" / "best.json").read_text())
    assert best["family"] == best["config"]["family"]


@pytest.mark.parametrize("args,needles", [
    (["--space", "seq2seq", "--dataset", "digits"], ["'seq2seq' serves sequence data", "--dataset addition"]),
    (["--space", "cnn", "--dataset", "addition"], ["'cnn' serves image data", "--space seq2seq"]),
    (["--space", "transfer", "--set", "transfer.init=pretrained"], ["pretrained"]),
    (["--space", "transfer", "--set", "transfer.init=checkpoint:/no/such/file.pt"], ["/no/such/file.pt"]),
    (["--space", "cnn", "--dataset", "numbers", "--base", "no-such-digits"], ["no-such-digits"]),
    (["--space", "cnn", "--dataset", "digits", "--base", "mnist"], ["--base only applies"]),
    (["--space", "cnn", "--set", "cnn.colour=red"], ["--set cnn.colour", "no parameter"]),
    (["--space", "cnn", "--set", "depth"], ["NAME=VALUE"]),
])
def test_bad_pairings_are_one_line(args, needles, tmp_path):
    """In-process (they fail before Ray starts); test_cli_errors shows the real process prints the same."""
    result = CliRunner().invoke(app, ["tune", "--results", str(tmp_path), *args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert_one_line_error(result.stderr, *needles)
    assert not tmp_path.exists() or not any(tmp_path.iterdir()), "nothing is written for a refused search"


def test_datasets_stats_prints_counts_and_writes_a_chart(tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "digits.png"
    run = run_cli("datasets", "--stats", "digits", "--out", str(out), timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["train", "val", "test", "total"] and lines[1].split() == ["class"]
    totals = [int(line.split()[-1]) for line in lines[2:12]]
    assert sum(totals) == 1797
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 300
    run = run_cli("datasets", "--stats", "numbers", "--base", "nowhere-digits", timeout=120)
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "nowhere-digits")
