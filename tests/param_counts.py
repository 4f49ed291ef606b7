"""Trainable parameter counts by hand, for checking the model families against.

FORMULAS[family](kwargs) takes the kwargs as models.create(family, **kwargs) receives
them (num_classes and image_size included, any left out at the family's default) and
does the arithmetic from the architecture's description alone, importing nothing of
the model code:

    conv k x k:  k*k*c_in*c_out (+ c_out bias, absent before a batchnorm)
    batchnorm:   2*c (scale and shift; running stats are buffers, not parameters)
    linear:      n_in*n_out + n_out
    LSTM:        4*(n_in*h + h*h + 2*h) per direction per layer (two biases per gate)
"""
from __future__ import annotations

from typing import Callable


def _hw(image_size) -> tuple[int, int]:
    if isinstance(image_size, (list, tuple)):
        return int(image_size[0]), int(image_size[1])
    return int(image_size), int(image_size)


def _listify(value, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _conv(k: int, c_in: int, c_out: int, batchnorm: bool) -> int:
    return k * k * c_in * c_out + (2 * c_out if batchnorm else c_out)


def _dense_stack(n_in: int, widths, num_classes: int) -> int:
    total = 0
    for n_out in [*widths, num_classes]:
        total += n_in * n_out + n_out
        n_in = n_out
    return total


def cnn_params(kw: dict) -> int:
    depth = kw["depth"]
    filters = _listify(kw["filters"], depth)
    pools = _listify(kw.get("pool", "max"), depth)
    k, bn = kw.get("kernel", 3), kw.get("batchnorm", False)
    valid = kw.get("padding", "same") == "valid"
    h, w = _hw(kw.get("image_size", 28))
    c, total = kw.get("in_channels", 1), 0
    convs = kw.get("convs", 1)
    for c_out, pool in zip(filters, pools):
        total += _conv(k, c, c_out, bn) + (convs - 1) * _conv(k, c_out, c_out, bn)
        if valid:
            h, w = h - convs * (k - 1), w - convs * (k - 1)
        if pool != "none":
            h, w = h // 2, w // 2
        c = c_out
    features = c if kw.get("head", "flatten") == "gap" else c * h * w
    return total + _dense_stack(features, kw.get("dense", ()), kw.get("num_classes", 10))


def lenet_params(kw: dict) -> int:
    filters = list(kw.get("filters", (6, 16)))
    bn, vgg = kw.get("batchnorm", False), kw.get("flavour", "classic") == "vgg"
    h, w = _hw(kw.get("image_size", 28))
    c, total = kw.get("in_channels", 1), 0
    for c_out, pad in zip(filters, (kw.get("padding", 2), 0)):
        # a 5x5 conv, or two 3x3 convs with the same output channels
        total += (_conv(3, c, c_out, bn) + _conv(3, c_out, c_out, bn)) if vgg else _conv(5, c, c_out, bn)
        # either way the map loses 4 pixels a side before padding, then a 2x2 pool halves it
        h, w = (h + 2 * pad - 4) // 2, (w + 2 * pad - 4) // 2
        c = c_out
    return total + _dense_stack(c * h * w, kw.get("dense", (120, 84)), kw.get("num_classes", 10))


def vgg_params(kw: dict) -> int:
    blocks = kw.get("blocks", 3)
    convs = _listify(kw.get("convs", 2), blocks)
    base, cap, bn = kw.get("base_width", 16), kw.get("max_width", 512), kw.get("batchnorm", False)
    h, w = _hw(kw.get("image_size", 28))
    c, total = kw.get("in_channels", 1), 0
    for block in range(blocks):
        c_out = min(base * 2**block, cap)
        total += _conv(3, c, c_out, bn) + (convs[block] - 1) * _conv(3, c_out, c_out, bn)
        # 2x2 pool, except along a side already down to 1 pixel
        h, w = (h // 2 if h >= 2 else h), (w // 2 if w >= 2 else w)
        c = c_out
    return total + _dense_stack(c * h * w, kw.get("dense", ()), kw.get("num_classes", 10))


def resnet_params(kw: dict) -> int:
    stages = kw.get("stages", 3)
    blocks = _listify(kw.get("blocks", 2), stages)
    base = kw.get("base_width", 16)
    total = 9 * kw.get("in_channels", 1) * base + 2 * base  # stem conv (no bias) + BN
    c = base
    for stage in range(stages):
        c_out = base * 2**stage
        for block in range(blocks[stage]):
            total += 9 * c * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out
            if block == 0 and stage > 0:  # stride 2 and doubled width: 1x1 conv + BN shortcut
                total += c * c_out + 2 * c_out
            c = c_out
    return total + c * kw.get("num_classes", 10) + kw.get("num_classes", 10)


def lstm_params(kw: dict) -> int:
    hidden, layers = kw.get("hidden", 128), kw.get("layers", 1)
    directions = 2 if kw.get("bidirectional", False) else 1
    n_in = kw.get("in_channels", 1) * _hw(kw.get("image_size", 28))[1]  # one image row per step
    total = 0
    for _ in range(layers):
        total += directions * 4 * (n_in * hidden + hidden * hidden + 2 * hidden)
        n_in = directions * hidden
    return total + directions * hidden * kw.get("num_classes", 10) + kw.get("num_classes", 10)


FORMULAS: dict[str, Callable[[dict], int]] = {
    "cnn": cnn_params,
    "lenet": lenet_params,
    "vgg": vgg_params,
    "resnet": resnet_params,
    "lstm": lstm_params,
}
