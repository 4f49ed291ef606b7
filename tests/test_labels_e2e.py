"""A search on class folders named by words, through the CLI: tune, best --retrain and predict
speak the folder names (data.labelset), from experiment.json to predictions.csv."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import run_in_process, tiny_search_in_process, write_kaggle_csv
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


SIGNS = [k for k in range(25) if k != 9]  # Sign Language MNIST's labels: 24 classes, no 9


def test_a_24_class_csv_labelled_0_to_24_without_9(tmp_path):
    """Searches, retrains, and speaks only its own labels: in predictions.csv and in `predict` on a
    folder of RGB dark-on-light photos of mixed sizes."""
    labels = np.tile(SIGNS, 25)
    images = np.random.default_rng(0).integers(0, 60, (len(labels), 28, 28), dtype=np.uint8)
    for image, k in zip(images, np.tile(np.arange(24), 25)):  # each class a bright block in its own place
        image[4 * (k // 5) + 2: 4 * (k // 5) + 8, 5 * (k % 5) + 2: 5 * (k % 5) + 8] = 255
    train = write_kaggle_csv(tmp_path / "sign_mnist_train.csv", images, labels)
    results = tmp_path / "results"
    tiny_search_in_process(results, "signs", "--dataset", str(train))
    run = run_in_process("best", "--results", str(results), "--name", "signs", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    final = results / "signs" / "final"
    assert set(pd.read_csv(final / "predictions.csv")["Label"]) <= set(SIGNS)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, side in enumerate((40, 64, 90)):
        page = Image.new("RGB", (side, side + 10), (235, 230, 220))  # light paper, dark ink, three sizes
        page.paste((20, 20, 30), (side // 3, side // 4, side // 3 + side // 6, side - side // 5))
        page.save(photos / f"photo{i}.png")
    out = tmp_path / "submission.csv"
    run = run_in_process("predict", "--model", str(final / "model.pt"), "--input", str(photos), "--output", str(out))
    assert run.returncode == 0, run.stderr
    written = pd.read_csv(out)
    assert len(written) == 3 and set(written["Label"]) <= set(SIGNS)
