"""Model families: the reports' own nets exactly, and every family builds and trains."""
import pytest
import torch

from digitsearch import models, spaces
from digitsearch.config import TrialConfig
from digitsearch.errors import UserError

KERAS_SIMPLE_CONVNET = dict(depth=2, filters=[32, 64], kernel=3, padding="valid", pool="max", dropout=0.5)
THREE_CONV_DENSE64 = dict(depth=3, filters=[32, 64, 64], kernel=3, padding="same", pool=["max", "max", "none"],
                          dense_layers=1, dense=[64], num_classes=5)


def test_keras_simple_mnist_convnet_has_34826_parameters():
    model = models.create("cnn", **KERAS_SIMPLE_CONVNET)
    assert models.count_params(model) == 34_826
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_three_conv_dense64_net_has_256837_parameters():
    model = models.create("cnn", **THREE_CONV_DENSE64)
    assert models.count_params(model) == 256_837
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 5)


@pytest.mark.parametrize("family", models.list_models())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_family_trains_on_a_batch(family, seed):
    """A config drawn from the family's own space builds, runs forward and backward, stays finite."""
    space = spaces.load(family)
    cfg = TrialConfig.from_flat(space.random_config(seed), space.family)
    torch.manual_seed(seed)
    try:
        model = models.create(family, **cfg.model_args)
    except models.InvalidArchitecture:
        pytest.skip("this draw describes no working net (recorded as infeasible in a search)")
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert models.count_params(model) == sum(p.numel() for p in model.parameters())


def test_shrinking_to_nothing_is_an_invalid_architecture():
    with pytest.raises(models.InvalidArchitecture, match="shrinks"):
        models.create("cnn", depth=5, filters=[16] * 5, kernel=5, padding="valid", pool="max")


def test_mismatched_lists_are_invalid():
    with pytest.raises(models.InvalidArchitecture):
        models.create("cnn", depth=3, filters=[16, 32])
    with pytest.raises(models.InvalidArchitecture):
        models.create("cnn", depth=1, filters=[16], dense_layers=2, dense=[64])


def test_unknown_family_and_kwarg_are_user_errors():
    with pytest.raises(UserError, match="known families: .*cnn"):
        models.create("nope")
    with pytest.raises(UserError, match="does not take colour"):
        models.create("cnn", depth=1, filters=[8], colour=True)


def test_gap_head_and_batchnorm():
    model = models.create("cnn", depth=2, filters=[8, 16], head="gap", batchnorm=True, pool=["max", "avg"])
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"BatchNorm2d", "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"} <= kinds
    # gap head: the classifier sees the channel count only
    assert model[-1].in_features == 16
