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


def _model_kwargs(family: str, seed: int, image_size) -> dict:
    space = spaces.load(family)
    config = space.random_config(seed)
    if config.get("transfer.init") == "imagenet":  # no downloads in tests; weights are tested in test_transfer
        config["transfer.init"] = "scratch"
    cfg = TrialConfig.from_flat(config, space.family)
    shape = SEQUENCE_SHAPE if models.task_of(family) == "sequence" else {"num_classes": 10, "image_size": image_size}
    return {**cfg.model_args, **shape}


def _first_working_draw(family: str, seed: int, image_size, tries: int = 20) -> tuple[torch.nn.Module, dict]:
    """(net, kwargs) of the first draw from seed, seed+1000, ... that describes a working net, so
    every case trains a net (a draw that pools to nothing is a search's infeasible trial, and
    the only error a draw may raise)."""
    for k in range(tries):
        kwargs = _model_kwargs(family, seed + 1000 * k, image_size)
        torch.manual_seed(seed)
        try:
            return models.create(family, **kwargs), kwargs
        except models.InvalidArchitecture:
            continue
    raise AssertionError(f"{tries} draws of the {family} space describe no working net")


@pytest.mark.parametrize("family", models.list_models())
@pytest.mark.parametrize("seed,image_size", [(0, 28), (1, 28), (2, [28, 84])])
def test_every_family_trains_on_a_batch(family, seed, image_size):
    """A config drawn from the family's own space builds, runs forward and backward on a batch
    of its task (28x28 digits, 28x84 numbers, or addition sequences), stays finite, and has
    the parameter count its kwargs imply."""
    task = models.task_of(family)
    model, kwargs = _first_working_draw(family, seed, image_size)
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


@pytest.mark.parametrize("family", [f for f in models.list_models() if f not in ("lstm", "seq2seq", "transfer")])
def test_mflops_from_shapes_equal_torchs_counter(family):
    """The analytic count (no torch._dynamo on the trial path) gives torch's own figure for every
    starting point of every convolutional family (LSTMs: below; transfer: test_transfer)."""
    from torch.utils.flop_counter import FlopCounterMode

    for point in spaces.load(family).starting_points:
        flat = {k: v for k, v in point.items() if k.startswith(f"{family}.")}
        model = models.create(family, **TrialConfig.from_flat(flat, family).model_args).eval()
        example = torch.zeros(1, 1, 28, 28)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
        assert models.forward_mflops(model, example) == pytest.approx(counter.get_total_flops() / 1e6, rel=1e-9)


def test_lstm_flops_are_counted_by_hand():
    """torch's FlopCounterMode sees none in nn.LSTM; the budget guard must."""
    model = models.create("lstm", hidden=128, layers=1)
    rows = 2 * 4 * (28 + 128) * 128 * 28 / 1e6
    assert models.forward_mflops(model, torch.zeros(1, 1, 28, 28)) == pytest.approx(rows, rel=0.01)


def _adders() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(units first, reading order): two adders with the same weights, differing only in reverse_output."""
    torch.manual_seed(0)
    shape = dict(encoder_width=16, decoder_width=16, teacher_forcing=1.0, **SEQUENCE_SHAPE)
    units_first = models.create("seq2seq", reverse_output=True, **shape)
    reading = models.create("seq2seq", reverse_output=False, **shape)
    reading.load_state_dict(units_first.state_dict())
    return units_first, reading


def test_seq2seq_emitting_units_first_hands_back_the_answer_in_reading_order():
    """reverse_output decodes the answer's last symbol first and flips it back: its output is the
    reading-order adder's decoding reversed, and teacher forcing feeds it the targets units first."""
    units_first, reading = _adders()
    x, y, runner = _batch("sequence", 0)
    units_first.eval(), reading.eval()
    assert not torch.equal(reading(x), reading(x).flip(1))  # a flip is visible on this input
    torch.testing.assert_close(units_first(x), reading(x).flip(1), rtol=0, atol=0)
    units_first.train(), reading.train()
    forced = units_first(x, y)
    torch.testing.assert_close(forced, reading(x, y.flip(1)).flip(1), rtol=0, atol=0)
    assert runner.loss(forced, y).item() == pytest.approx(runner.loss(reading(x, y.flip(1)), y.flip(1)).item())


def test_seq2seq_units_first_reads_only_the_later_digits_it_was_fed():
    """Decoding units first, the units logits see no target (nothing was emitted before them) and the
    first digit's target is never fed back (it is emitted last); in reading order, the mirror image."""
    units_first, reading = _adders()
    units_first.train(), reading.train()
    x, y, _ = _batch("sequence", 0)

    def changed_positions(model, position: int) -> list[int]:
        other = y.clone()
        other[:, position] = (y[:, position] + 1) % 12
        moved = (model(x, y) - model(x, other)).abs().amax(dim=(0, 2))
        return [k for k in range(3) if moved[k] > 0]

    assert changed_positions(units_first, 0) == []  # the hundreds: emitted last, never fed back
    assert changed_positions(units_first, 2) == [0, 1]  # the units: fed to the tens and hundreds steps
    assert changed_positions(units_first, 1) == [0]
    assert changed_positions(reading, 2) == []
    assert changed_positions(reading, 0) == [1, 2]


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
