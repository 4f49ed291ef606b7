"""The lenet, vgg, resnet and lstm families (and cnn on wide images): pinned counts, shapes,
infeasible kwargs, and parameter counts against the hand arithmetic of param_counts.py."""
import pytest
import torch
from param_counts import FORMULAS

from digitsearch import models, spaces
from digitsearch.core.config import TrialConfig

FAMILIES = ["lenet", "vgg", "resnet", "lstm"]
SIZES = [28, [28, 84]]

# one config per family that leaves the defaults: every optional part switched on
NON_DEFAULT = {
    "lenet": dict(flavour="vgg", activation="relu", pool="max", padding=0, filters=[16, 32],
                  dense=[64, 32], batchnorm=True, dropout=0.2),
    "vgg": dict(blocks=5, convs=[1, 2, 3, 1, 2], base_width=8, batchnorm=True, dense_layers=2,
                dense=[256, 128], dropout=0.3),
    "resnet": dict(stages=4, blocks=[1, 2, 1, 3], base_width=24, stem_stride=2, dropout=0.1),
    "lstm": dict(hidden=64, layers=3, bidirectional=True, dropout=0.2),
    "cnn": dict(depth=3, filters=[16, 32, 48], pool=["max", "none", "avg"], kernel=5, padding="valid",
                batchnorm=True, dense_layers=2, dense=[64, 32], dropout=0.1),
}


def _hw(size):
    return models.image_hw(size)


def test_classic_lenet5_has_61706_parameters():
    model = models.create("lenet")
    assert models.count_params(model) == 61_706
    explicit = models.create("lenet", activation="tanh", pool="avg", padding=2, flavour="classic",
                             filters=[6, 16], dense=[120, 84])
    assert models.count_params(explicit) == 61_706
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.out_channels, c.padding) for c in convs] == [((5, 5), 6, (2, 2)), ((5, 5), 16, (0, 0))]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16 * 5 * 5, 120), (120, 84), (84, 10)]
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Tanh", "AvgPool2d"} <= kinds and not {"ReLU", "MaxPool2d", "BatchNorm2d", "Dropout"} & kinds


def test_lenet_vgg_flavour_has_two_3x3_convs_per_5x5_and_62724_parameters():
    model = models.create("lenet", flavour="vgg")
    assert models.count_params(model) == 62_724
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.out_channels) for c in convs] == [((3, 3), 6), ((3, 3), 6), ((3, 3), 16), ((3, 3), 16)]
    # the padding is shared out so the maps match the classic net's: same 16x5x5 flatten
    assert sum(c.padding[0] for c in convs[:2]) == 2
    assert [m for m in model.modules() if isinstance(m, torch.nn.Linear)][0].in_features == 400


@pytest.mark.parametrize("size", SIZES, ids=["28x28", "28x84"])
@pytest.mark.parametrize("family", FAMILIES + ["cnn"])
@pytest.mark.parametrize("variant", ["default", "non_default"])
def test_forward_shapes_on_square_and_wide_images(family, size, variant):
    kwargs = NON_DEFAULT[family] if variant == "non_default" or family == "cnn" else {}
    if family == "cnn" and variant == "default":
        kwargs = dict(depth=2, filters=[32, 64], kernel=3, padding="valid", pool="max", dropout=0.5)
    torch.manual_seed(0)
    model = models.create(family, num_classes=7, image_size=size, **kwargs)
    model.eval()
    out = model(torch.randn(2, 1, *_hw(size)))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert models.count_params(model) == FORMULAS[family]({**kwargs, "num_classes": 7, "image_size": size})


@pytest.mark.parametrize("family", FAMILIES)
def test_three_input_channels(family):
    model = models.create(family, in_channels=3, image_size=[28, 84])
    assert model(torch.randn(2, 3, 28, 84)).shape == (2, 10)
    assert models.count_params(model) == FORMULAS[family]({"in_channels": 3, "image_size": [28, 84]})


@pytest.mark.parametrize("family, kwargs, match", [
    ("lenet", dict(filters=[6, 16, 32]), "filters"),
    ("lenet", dict(activation="sigmoid"), "activation"),
    ("lenet", dict(padding=-1), "padding"),
    ("lenet", dict(padding=0, image_size=12), "shrinks"),            # 8 -> 4 -> 0
    ("lenet", dict(padding=0, image_size=[28, 12], flavour="vgg"), "shrinks"),
    ("vgg", dict(blocks=3, convs=[1, 2]), "convs"),
    ("vgg", dict(convs=0), "at least one conv"),
    ("vgg", dict(dense_layers=2, dense=[128]), "dense"),
    ("resnet", dict(stages=3, blocks=[2, 2]), "blocks"),
    ("resnet", dict(blocks=0), "at least one block"),
    ("resnet", dict(stem_stride=4), "stem_stride"),
    ("lstm", dict(layers=0), "layers"),
])
def test_kwargs_describing_no_net_are_invalid(family, kwargs, match):
    with pytest.raises(models.InvalidArchitecture, match=match):
        models.create(family, **kwargs)


def test_vgg_doubles_widths_caps_them_and_does_not_pool_a_1_pixel_side():
    model = models.create("vgg", blocks=5, convs=1, base_width=64, max_width=256, image_size=[28, 84])
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 256]
    # height 28-14-7-3-1-1 (the 5th pool leaves it), width 84-42-21-10-5-2
    pools = [m.kernel_size for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools[-1] == (1, 2) and all(p == (2, 2) for p in pools[:-1])
    assert model[-1].in_features == 256 * 1 * 2
    square = models.create("vgg", blocks=5, convs=1, base_width=8)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in square.modules()) == 4  # a 1x1 map is not pooled
    assert square(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_resnet_projects_only_where_the_shape_changes():
    model = models.create("resnet", stages=3, blocks=[2, 1, 2], base_width=16)
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    shortcuts = [type(b.shortcut).__name__ for b in blocks]
    assert shortcuts == ["Identity", "Identity", "Sequential", "Sequential", "Identity"]
    assert [b.conv1.stride for b in blocks] == [(1, 1), (1, 1), (2, 2), (2, 2), (1, 1)]
    assert [b.conv2.out_channels for b in blocks] == [16, 16, 32, 64, 64]
    assert model[-1].in_features == 64
    assert models.count_params(models.create("resnet")) == 174_970  # 3 stages of 2 blocks, base 16


def test_bidirectional_lstm_doubles_the_head_input_and_reads_both_final_states():
    hidden = 32
    uni = models.create("lstm", hidden=hidden)
    bi = models.create("lstm", hidden=hidden, layers=2, bidirectional=True, image_size=[28, 84])
    assert uni.head.in_features == hidden and bi.head.in_features == 2 * hidden
    bi.eval()
    x = torch.randn(3, 1, 28, 84)
    with torch.no_grad():
        steps, _ = bi.lstm(x[:, 0])  # one channel: the rows are the image's rows as they are
        # forward direction after the last row, backward direction after the first row
        final = torch.cat([steps[:, -1, :hidden], steps[:, 0, hidden:]], dim=1)
        torch.testing.assert_close(bi(x), bi.head(final))
    assert uni.lstm.dropout == 0.0 and bi.lstm.num_layers == 2


def test_hand_picked_counts_match_the_formulas():
    cases = [
        ("lenet", {}, 61_706),
        ("lenet", {"flavour": "vgg"}, 62_724),
        ("lenet", {"image_size": [28, 84]}, 196_106),  # 16 x 5 x 19 flattened features
        ("vgg", {"blocks": 3, "convs": 2, "base_width": 16, "dense_layers": 1, "dense": [128]}, 146_938),
        ("resnet", {}, 174_970),
        ("lstm", {}, 82_186),  # 4*(28*128 + 128*128 + 256) + 128*10 + 10
        ("lstm", {"hidden": 64, "layers": 2, "bidirectional": True}, 2 * 4 * (28 * 64 + 64 * 64 + 128)
         + 2 * 4 * (128 * 64 + 64 * 64 + 128) + 128 * 10 + 10),
        ("cnn", {"depth": 2, "filters": [32, 64], "kernel": 3, "padding": "valid", "pool": "max"}, 34_826),
        ("cnn", {"depth": 3, "filters": [32, 64, 64], "pool": ["max", "max", "none"], "dense_layers": 1,
                 "dense": [64], "num_classes": 5}, 256_837),
    ]
    for family, kwargs, expected in cases:
        assert FORMULAS[family](kwargs) == expected, (family, kwargs)
        assert models.count_params(models.create(family, **kwargs)) == expected, (family, kwargs)


def test_cnn_flattens_both_sides_of_a_wide_image():
    model = models.create("cnn", depth=2, filters=[32, 64], kernel=3, padding="valid", pool="max",
                          image_size=[28, 84])
    assert model[-1].in_features == 64 * 5 * 19  # 28-26-13-11-5 by 84-82-41-39-19
    assert model(torch.zeros(2, 1, 28, 84)).shape == (2, 10)


@pytest.mark.parametrize("size", SIZES, ids=["28x28", "28x84"])
@pytest.mark.parametrize("family", FAMILIES + ["cnn"])
def test_random_configs_from_the_space_match_the_formulas(family, size):
    space = spaces.load(family)
    built = 0
    for seed in range(30):
        # only the model keys: training settings play no part in the count
        flat = {k: v for k, v in space.random_config(seed).items() if k.startswith(f"{family}.")}
        kwargs = {**TrialConfig.from_flat(flat, family).model_args, "num_classes": 10, "image_size": size}
        try:
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                model = models.create(family, **kwargs)
        except models.InvalidArchitecture:
            continue
        assert models.count_params(model) == FORMULAS[family](kwargs), kwargs
        built += 1
    assert built >= 20  # infeasible draws are allowed, but not most of them


@pytest.mark.parametrize("family", ["lenet", "vgg", "resnet"])
def test_starting_points_are_under_the_default_flops_budget(family):
    space = spaces.load(family)
    for point in space.starting_points:
        flat = {k: v for k, v in point.items() if k.startswith(f"{family}.")}
        model = models.create(family, **TrialConfig.from_flat(flat, family).model_args)
        assert models.forward_mflops(model, torch.zeros(1, 1, 28, 28)) < 40, point
