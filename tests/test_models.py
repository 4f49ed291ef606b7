"""Model families: the reports' own nets exactly, and every family builds and trains."""
import pytest
import torch

from digitsearch import models, spaces
from digitsearch.core import tasks
from digitsearch.core.config import TrialConfig
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


SEQUENCE_SHAPE = {"vocab_size": 12, "in_length": 7, "out_length": 3}


def _formulas() -> dict:
    """Hand-written parameter counts per family (tests/param_counts*.py), independent of the modules."""
    from param_counts import FORMULAS
    from param_counts_transfer import FORMULAS as TRANSFER

    return {**FORMULAS, **TRANSFER, "seq2seq": seq2seq_params}


def seq2seq_params(k: dict) -> int:
    def lstm(inputs: int, width: int, layers: int) -> int:
        return sum(4 * ((inputs if i == 0 else width) * width + width * width + 2 * width) for i in range(layers))

    enc, dec, vocab = k.get("encoder_width", 128), k.get("decoder_width", 128), k["vocab_size"]
    layers = k.get("decoder_layers", 1)
    attention = dec * enc + (dec + enc + 1) * dec if k.get("attention") else 0
    return (lstm(vocab, enc, k.get("encoder_layers", 1)) + (enc + 1) * dec * layers
            + lstm(enc + vocab, dec, layers) + (dec + 1) * vocab + attention)


def _batch(task: str, image_size):
    torch.manual_seed(0)
    if task == "sequence":
        y = torch.randint(0, 12, (8, 3))
        return torch.nn.functional.one_hot(torch.randint(0, 12, (8, 7)), 12).float(), y, tasks.SequenceTask(12)
    height, width = models.image_hw(image_size)
    return torch.randn(8, 1, height, width), torch.arange(8) % 10, tasks.ImageTask()


@pytest.mark.parametrize("family", models.list_models())
@pytest.mark.parametrize("seed,image_size", [(0, 28), (1, 28), (2, [28, 84])])
def test_every_family_trains_on_a_batch(family, seed, image_size):
    """A config drawn from the family's own space builds, runs forward and backward on a batch
    of its task (28x28 digits, 28x84 numbers, or addition sequences), stays finite, and has
    the parameter count its kwargs imply."""
    space = spaces.load(family)
    config = space.random_config(seed)
    if config.get("transfer.init") == "imagenet":  # no downloads in tests; weights are tested in test_transfer
        config["transfer.init"] = "scratch"
    cfg = TrialConfig.from_flat(config, space.family)
    task = models.task_of(family)
    shape = SEQUENCE_SHAPE if task == "sequence" else {"num_classes": 10, "image_size": image_size}
    kwargs = {**cfg.model_args, **shape}
    torch.manual_seed(seed)
    try:
        model = models.create(family, **kwargs)
    except models.InvalidArchitecture:
        pytest.skip("this draw describes no working net (recorded as infeasible in a search)")
    x, y, runner = _batch(task, image_size)
    model.train()
    loss = runner.loss(runner.forward(model, x, y), y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert models.count_params(model) == _formulas()[family](kwargs)


def test_every_family_has_a_formula_and_a_space():
    assert set(models.list_models()) <= set(_formulas())
    assert set(models.list_models()) <= set(spaces.list_spaces())


def test_families_declare_their_task():
    assert models.task_of("seq2seq") == "sequence"
    assert {models.task_of(f) for f in models.list_models() if f != "seq2seq"} == {"image"}
    with pytest.raises(UserError, match="serves sequence data but dataset 'digits' holds image data"):
        models.check_serves("seq2seq", "image", "digits")
    with pytest.raises(UserError, match="use --space seq2seq"):
        models.check_serves("cnn", "sequence", "addition")


def test_lstm_flops_are_counted_by_hand():
    """torch's FlopCounterMode sees none in nn.LSTM; the budget guard must."""
    model = models.create("lstm", hidden=128, layers=1)
    rows = 2 * 4 * (28 + 128) * 128 * 28 / 1e6
    assert models.forward_mflops(model, torch.zeros(1, 1, 28, 28)) == pytest.approx(rows, rel=0.01)


def test_seq2seq_reads_its_own_answer_order_back():
    """reverse_output emits units first but callers always get the answer in reading order."""
    torch.manual_seed(0)
    model = models.create("seq2seq", encoder_width=16, decoder_width=16, reverse_output=True,
                          teacher_forcing=1.0, **SEQUENCE_SHAPE)
    x, y, runner = _batch("sequence", 0)
    model.train()
    forced = model(x, y)
    assert forced.shape == (8, 3, 12)
    model.eval()
    assert model(x).shape == (8, 3, 12)


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
