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
    ({"optimizer": "adagrad"},
     "training setting 'optimizer': must be 'adam', 'adamw', 'rmsprop' or 'sgd', not 'adagrad'"),
    ({"augment": "heavy"}, "training setting 'augment': must be 'none', 'shift', 'light' or 'strong', not 'heavy'"),
    ({"lr": -1.0}, "training setting 'lr': must be greater than 0, not -1.0"),
    ({"lr": "fast"}, "training setting 'lr': must be a valid number.*, not 'fast'"),
    ({"lr": True}, "training setting 'lr': must be a number, not True"),
    ({"batch_size": 0}, "training setting 'batch_size': must be greater than or equal to 1, not 0"),
    ({"batch_size": 32.5}, "training setting 'batch_size': must be a valid integer, not 32.5"),
    ({"momentum": 3}, "training setting 'momentum': must be less than 1, not 3"),
    ({"label_smoothing": float("nan")}, "training setting 'label_smoothing': must be a finite number"),
])
def test_unknown_keys_and_values_are_errors(flat, needle):
    with pytest.raises(UserError, match=needle):
        TrialConfig.from_flat(flat, "cnn")


def test_gather_indexed_keeps_order():
    assert list(gather_indexed({"a": 1, "f_1": 2, "b": 3, "f_2": 4})) == ["a", "f", "b"]
