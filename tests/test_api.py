"""The Python API's contract without a search (the example in docs/python-api.md runs a real one,
tests/test_docs.py): its names, bad input as UserError before anything is written, and the
Predictor on every input shape a notebook has at hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import digitsearch as ds
from digitsearch import api, models
from digitsearch.final.export import save_model

CNN = dict(depth=1, filters=[8], dense_layers=0)


def test_the_package_exposes_the_api_lazily():
    assert ds.tune is api.tune and ds.retrain is api.retrain and ds.load_model is api.load_model
    assert ds.UserError.__module__ == "digitsearch.errors"
    with pytest.raises(AttributeError, match="no attribute 'tuna'"):
        ds.tuna  # noqa: B018


@pytest.mark.parametrize("options, needle", [
    ({"trails": 3}, "tune() takes no option 'trails'"),
    ({"scheduler": "hyperband"}, "--scheduler must be one of asha, fifo"),
    ({"search": "grid"}, "--search must be one of optuna, random"),
    ({"max_epochs": 0}, "--max-epochs must be at least 1"),
    ({"space": "nope"}, "unknown search space 'nope'"),
])
def test_bad_tune_calls_raise_before_anything_is_written(tmp_path, options, needle):
    results = tmp_path / "results"
    with pytest.raises(ds.UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        ds.tune(results=results, **options)
    assert not results.exists()


def test_best_and_retrain_name_what_is_missing(tmp_path):
    with pytest.raises(ds.UserError, match="no experiment in"):
        ds.best(results=tmp_path)
    with pytest.raises(ds.UserError, match="no experiment 'ghost'"):
        ds.retrain("ghost", results=tmp_path)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    torch.manual_seed(0)
    model = models.create("cnn", **CNN).eval()
    path = tmp_path_factory.mktemp("api") / "model.pt"
    save_model(path, model, family="cnn", model_args=CNN, mean=0.13, std=0.31,
               class_names=[str(i) for i in range(10)], image_size=28)
    return ds.load_model(path)


def test_predict_takes_images_one_image_or_kaggle_rows(predictor, digits_bundle):
    images = digits_bundle.test.images[:8]
    labels, probabilities = predictor.predict(images)
    assert labels.shape == (8,) and probabilities.shape == (8, 10)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5) and (labels == probabilities.argmax(1)).all()
    one, _ = predictor.predict(images[0])
    rows, _ = predictor.predict(images.reshape(8, -1))
    assert one.tolist() == labels[:1].tolist() and rows.tolist() == labels.tolist()
    assert predictor.class_names == [str(i) for i in range(10)]


@pytest.mark.parametrize("inputs, needle", [
    (np.zeros((2, 14, 14), dtype=np.uint8), "28x28"),
    (np.zeros((2, 100)), "28x28"),
    (np.full((1, 28, 28), 300.0), "0-255"),
])
def test_predict_refuses_what_the_model_cannot_read(predictor, inputs, needle):
    with pytest.raises(ds.UserError, match=needle):
        predictor.predict(inputs)
