"""Trainable parameters of the transfer family, worked out by hand, not by building the model.

The backbone counts come from the torchvision architectures layer by layer (convs,
BatchNorm's weight and bias, MobileNetV3's squeeze-excitation convs with biases); the
totals agree with torchvision's documented num_params minus the classifier
(vgg16 138,357,544 - 123,642,856; mobilenet_v3_small 2,542,856 - 1,615,848).
"""
from __future__ import annotations


def _conv(cin: int, cout: int, k: int, bias: bool = False, groups: int = 1) -> int:
    return cin // groups * cout * k * k + (cout if bias else 0)


def _bn(channels: int) -> int:
    return 2 * channels  # weight and bias; running statistics are buffers


def _vgg16_block(convs: list[tuple[int, int]]) -> int:
    return sum(_conv(cin, cout, 3, bias=True) for cin, cout in convs)


VGG16_STAGES = [
    _vgg16_block([(3, 64), (64, 64)]),
    _vgg16_block([(64, 128), (128, 128)]),
    _vgg16_block([(128, 256), (256, 256), (256, 256)]),
    _vgg16_block([(256, 512), (512, 512), (512, 512)]),
    _vgg16_block([(512, 512), (512, 512), (512, 512)]),
]


def _basic_block(cin: int, cout: int, downsample: bool) -> int:
    count = _conv(cin, cout, 3) + _bn(cout) + _conv(cout, cout, 3) + _bn(cout)
    return count + (_conv(cin, cout, 1) + _bn(cout) if downsample else 0)


RESNET18_STEM = _conv(3, 64, 7) + _bn(64)
RESNET18_LAYERS = [
    _basic_block(64, 64, False) + _basic_block(64, 64, False),
    _basic_block(64, 128, True) + _basic_block(128, 128, False),
    _basic_block(128, 256, True) + _basic_block(256, 256, False),
    _basic_block(256, 512, True) + _basic_block(512, 512, False),
]


def _divisible8(v: float) -> int:
    """torchvision's _make_divisible(v, 8): round to a multiple of 8, never below 90% of v."""
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


def _inverted_residual(cin: int, k: int, expanded: int, cout: int, se: bool) -> int:
    count = _conv(cin, expanded, 1) + _bn(expanded) if expanded != cin else 0
    count += _conv(expanded, expanded, k, groups=expanded) + _bn(expanded)
    if se:
        squeeze = _divisible8(expanded // 4)
        count += _conv(expanded, squeeze, 1, bias=True) + _conv(squeeze, expanded, 1, bias=True)
    return count + _conv(expanded, cout, 1) + _bn(cout)


# torchvision's mobilenet_v3_small table: (in, kernel, expanded, out, squeeze-excite)
MOBILENET_V3_SMALL_BLOCKS = [
    _inverted_residual(*row)
    for row in [
        (16, 3, 16, 16, True), (16, 3, 72, 24, False), (24, 3, 88, 24, False), (24, 5, 96, 40, True),
        (40, 5, 240, 40, True), (40, 5, 240, 40, True), (40, 5, 120, 48, True), (48, 5, 144, 48, True),
        (48, 5, 288, 96, True), (96, 5, 576, 96, True), (96, 5, 576, 96, True),
    ]
]
MOBILENET_V3_SMALL_STEM = _conv(3, 16, 3) + _bn(16)
MOBILENET_V3_SMALL_LAST_CONV = _conv(96, 576, 1) + _bn(576)

# backbone -> (all feature-extractor parameters, the last stage's, the feature width)
BACKBONES = {
    "resnet18": (RESNET18_STEM + sum(RESNET18_LAYERS), RESNET18_LAYERS[-1], 512),
    "vgg16": (sum(VGG16_STAGES), VGG16_STAGES[-1], 512),
    "mobilenet_v3_small": (
        MOBILENET_V3_SMALL_STEM + sum(MOBILENET_V3_SMALL_BLOCKS) + MOBILENET_V3_SMALL_LAST_CONV,
        sum(MOBILENET_V3_SMALL_BLOCKS[8:]) + MOBILENET_V3_SMALL_LAST_CONV,  # the stride-32 blocks
        576,
    ),
}
# pinned: the users' report table (VGG16 features) and torchvision's documented counts
assert BACKBONES["vgg16"][0] == 14_714_688
assert BACKBONES["resnet18"][0] == 11_176_512 and BACKBONES["resnet18"][1] == 8_393_728
assert BACKBONES["mobilenet_v3_small"][0] == 927_008


def transfer(kwargs: dict) -> int:
    backbone = kwargs.get("backbone", "resnet18")
    full, last_stage, width = BACKBONES[backbone]
    head_width, num_classes = kwargs.get("head_width", 256), kwargs.get("num_classes", 10)
    head = (width * head_width + head_width + head_width * num_classes + num_classes
            if head_width > 0 else width * num_classes + num_classes)
    trained_backbone = {"none": full, "last-stage": last_stage, "backbone": 0}[kwargs.get("freeze", "none")]
    return head + trained_backbone


FORMULAS = {"transfer": transfer}
