"""A search on class folders named by words, through the CLI: tune, best --retrain and predict
speak the folder names (data.labelset), from experiment.json to predictions.csv."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import run_in_process, tiny_search_in_process
from digitsearch.data import load

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_per_file")]

WORDS = {0: "zero", 1: "one", 2: "two"}  # sorted as text: one, two, zero


def _write_class_folders(root, digits) -> None:
    for split, part in (("train", digits.train), ("test", digits.test)):
        for digit, word in WORDS.items():
            folder = root / split / word
            folder.mkdir(parents=True)
            for i, image in enumerate(part.images[part.labels == digit][:60]):
                Image.fromarray(image).save(folder / f"{i}.png")


def test_a_search_on_word_labelled_class_folders(tmp_path):
    data = tmp_path / "data"
    _write_class_folders(data, load("digits"))
    results = tmp_path / "results"
    tiny_search_in_process(results, "words", "--dataset", str(data))
    folder = results / "words"
    assert json.loads((folder / "experiment.json").read_text())["labels"] == ["one", "two", "zero"]
    run = run_in_process("best", "--results", str(results), "--name", "words", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    final = folder / "final"
    predictions = pd.read_csv(final / "predictions.csv")
    assert set(predictions["Label"]) <= {"one", "two", "zero"}
    assert len(predictions) == sum(1 for _ in (data / "test").glob("*/*.png"))
    assert set(json.loads((final / "metrics.json").read_text())["per_class"]) == {"one", "two", "zero"}
    loose = tmp_path / "mine"
    loose.mkdir()
    for source in sorted((data / "test" / "two").iterdir())[:4]:
        (loose / source.name).write_bytes(source.read_bytes())
    out = tmp_path / "submission.csv"
    run = run_in_process("predict", "--model", str(final / "model.pt"), "--input", str(loose), "--output", str(out))
    assert run.returncode == 0, run.stderr
    written = pd.read_csv(out)
    assert list(written.columns) == ["file", "Label"] and set(written["Label"]) <= {"one", "two", "zero"}
    assert np.asarray(written["Label"]).dtype == object
    run = run_in_process("predict", "--model", str(final / "model.pt"), "--input", str(data / "test"),
                         "--output", str(tmp_path / "again.csv"))
    assert run.returncode == 0, run.stderr
    accuracy = float(run.stdout.rsplit("labels ", 1)[1])  # class folders are labelled: predict scores them
    assert accuracy == pytest.approx(json.loads((final / "metrics.json").read_text())["test_accuracy"], abs=1e-4)
