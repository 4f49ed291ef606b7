"""The flat Tune dict is parsed once, and strictly."""
import pytest

from digitsearch.core.config import TrainSettings, TrialConfig, gather_indexed
from digitsearch.errors import UserError


def test_from_flat_splits_model_and_training():
    cfg = TrialConfig.from_flat(
        {"cnn.depth": 2, "cnn.filters_2": 64, "cnn.filters_1": 32, "cnn.kernel": 5, "lr": 0.01, "optimizer": "sgd",
         "momentum": 0.95, "augment": "light"}, "cnn")
    assert cfg.family == "cnn"
    assert cfg.model_args == {"depth": 2, "filters": [32, 64], "kernel": 5}
    assert cfg.train == TrainSettings(lr=0.01, optimizer="sgd", momentum=0.95, augment="light")


def test_family_key_wins():
    cfg = TrialConfig.from_flat({"family": "lenet", "lenet.act": "tanh"}, "all")
    assert cfg.family == "lenet" and cfg.model_args == {"act": "tanh"}


@pytest.mark.parametrize("flat, needle", [
    ({"lstm.hidden": 64}, "'lstm.hidden' is neither"),
    ({"learning_rate": 0.1}, "'learning_rate' is neither"),
    ({"optimizer": "adagrad"}, "optimizer 'adagrad'"),
    ({"augment": "heavy"}, "augment 'heavy'"),
])
def test_unknown_keys_and_values_are_errors(flat, needle):
    with pytest.raises(UserError, match=needle):
        TrialConfig.from_flat(flat, "cnn")


def test_gather_indexed_keeps_order():
    assert list(gather_indexed({"a": 1, "f_1": 2, "b": 3, "f_2": 4})) == ["a", "f", "b"]
