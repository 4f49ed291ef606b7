"""The tasks beyond single digits and the space across families, searched and retrained
through the real command line (tiny): the LSTM adder on `addition`, multi-digit `numbers`,
and `--space all` with at least four families."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from conftest import run_in_process
from conftest import tiny_search_in_process as tiny_search
from digitsearch.final import export

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_per_file")]  # the searches share one Ray


def test_seq2seq_searches_and_retrains_on_addition(tmp_path):
    # the space's own parameters, narrowed to small LSTMs to keep the suite quick
    table, run = tiny_search(tmp_path, "adder", "--space", "seq2seq", "--dataset", "addition",
                             "--set", "seq2seq.encoder_width=64", "--set", "seq2seq.decoder_width=64",
                             "--set", "seq2seq.encoder_layers=1", "--set", "seq2seq.decoder_layers=1")
    assert "test sequences" in run.stdout and "12 symbols" in run.stdout
    assert set(table["family"]) == {"seq2seq"} and (table["val_acc"] >= 0).all()
    run = run_in_process("best", "--results", str(tmp_path), "--name", "adder", "--retrain", "--epochs", "1")
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


@pytest.mark.extended
def test_numbers_dataset_through_search_and_retrain(tmp_path):
    """28x84 images of 0..255, 256 classes, end to end with the LeNet family."""
    table, run = tiny_search(tmp_path, "numbers", "--space", "lenet", "--dataset", "numbers", "--base", "digits",
                             trials=1)
    assert "256 classes" in run.stdout
    run = run_in_process("best", "--results", str(tmp_path), "--name", "numbers", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    model, meta = export.load_model(tmp_path / "numbers" / "final" / "model.pt")
    assert meta["image_size"] == [28, 84] and len(meta["class_names"]) == 256
    assert model(torch.zeros(1, 1, 28, 84)).shape == (1, 256)


def test_one_space_across_families(tmp_path):
    """The issue's command: 16 trials of at least 4 families, a family column in the leaderboard."""
    table, run = tiny_search(tmp_path, "all", "--space", "all", "--dataset", "digits", trials=16, epochs=2)
    assert table["family"].nunique() >= 4, table[["family", "status", "val_acc"]].to_string()
    assert (table["status"] != "error").all(), table[["family", "status", "note"]].to_string()
    for family in table["family"].unique():  # each row only has its own family's parameters
        rows = table[table["family"] == family]
        others = [c for c in table.columns if "." in c and not c.startswith(f"{family}.")]
        assert rows[others].isna().all().all(), family
    best = json.loads((tmp_path / "all" / "best.json").read_text())
    assert best["family"] == best["config"]["family"]
