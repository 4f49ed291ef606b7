"""scikit-learn's bundled 8x8 digits, made to look like MNIST.

The set ships with scikit-learn, so `digits` works offline and in CI. MNIST digits are
size-normalised to 20x20 and centred in a 28x28 canvas; doing the same here lets every
model and search space built for MNIST run unchanged on this small set.
"""

from __future__ import annotations

import numpy as np

from digitsearch.data.bundle import Split

SOURCE_SIZE = 8
DIGIT_SIZE = 20
CANVAS_SIZE = 28
SOURCE_MAX = 16.0  # load_digits pixel values are 0..16, ink high


def _bilinear_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix doing 1-D bilinear resampling, pixel-centre aligned.

    Same convention as torch's interpolate(mode="bilinear", align_corners=False) and
    PIL's BILINEAR for upscaling; bilinear is separable, so two small matrix products
    resize the whole stack at once without pulling in torch or PIL.
    """
    pos = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    pos = np.clip(pos, 0, src - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, src - 1)
    weight = pos - low
    matrix = np.zeros((dst, src))
    matrix[np.arange(dst), low] += 1 - weight
    matrix[np.arange(dst), high] += weight
    return matrix


def mnist_like(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) floats 0..16 -> (N, 28, 28) uint8 0..255, digit 20x20 centred."""
    resize = _bilinear_matrix(images.shape[1], DIGIT_SIZE)
    scaled = images.astype(np.float64) * (255.0 / SOURCE_MAX)
    big = np.einsum("ij,njk,lk->nil", resize, scaled, resize)
    canvas = np.zeros((len(images), CANVAS_SIZE, CANVAS_SIZE), dtype=np.uint8)
    margin = (CANVAS_SIZE - DIGIT_SIZE) // 2
    canvas[:, margin:margin + DIGIT_SIZE, margin:margin + DIGIT_SIZE] = (
        np.clip(np.rint(big), 0, 255).astype(np.uint8))
    return canvas


def load_digits_split() -> Split:
    """All 1,797 digits as one labelled Split (the caller carves test and validation)."""
    from sklearn.datasets import load_digits  # imported here: only this loader needs it

    raw = load_digits()
    return Split(mnist_like(raw.images), raw.target.astype(np.int64))


NOTE = (f"scikit-learn digits: 1,797 {SOURCE_SIZE}x{SOURCE_SIZE} images scaled to 0-255, "
        f"upscaled (bilinear) to {DIGIT_SIZE}x{DIGIT_SIZE} and centred in "
        f"{CANVAS_SIZE}x{CANVAS_SIZE} like MNIST")
