"""Training augmentation, batched on the tensors' device: one call per batch, not per image.
The random draws are made on the generator's device (engine.generator_for: the data's), so a
GPU batch needs no copy from the host.

shift:        integer translations of up to SHIFT_PIXELS pixels (a padded random crop: the
              recipe that takes a plain CNN past 99.4 % on MNIST)
light/strong: a random affine warp per image (rotation, zoom, translation, shear)
erasing:      with probability p an image gets one random rectangle set to 0 (the mean of
              the standardised pixels), Zhong et al.'s random erasing
flip:         left-right mirroring of half the images; only for mirror-safe data (clothing),
              which the search checks before it starts (search.validate)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from digitsearch.core.config import TrainSettings

# (max rotation in degrees, max relative scale change, max translation as a fraction of the image, max shear)
AFFINE_STRENGTH = {"light": (10.0, 0.10, 0.10, 0.0), "strong": (20.0, 0.20, 0.15, 0.20)}
SHIFT_PIXELS = 2
# an erased rectangle covers 2-25 % of the image, with an aspect ratio between 1/3 and 3
ERASE_AREA = (0.02, 0.25)
ERASE_ASPECT = (1 / 3, 3.0)


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + torch.rand(n, generator=generator, device=generator.device) * (high - low)


def affine(x: Tensor, strength: str, generator: torch.Generator) -> Tensor:
    """A different random affine warp per image, all in one grid_sample call."""
    rot, scale, shift, shear = AFFINE_STRENGTH[strength]
    n = x.shape[0]

    def symmetric(limit: float) -> Tensor:
        return uniform(n, -limit, limit, generator)

    angle = symmetric(math.radians(rot))
    zoom = 1 + symmetric(scale)
    sh = symmetric(shear)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin + sh, symmetric(2 * shift)], 1), torch.stack([sin, cos, symmetric(2 * shift)], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # border padding: edge pixels are background, whatever the normalisation made of 0
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def shift(x: Tensor, generator: torch.Generator, pixels: int = SHIFT_PIXELS) -> Tensor:
    """Each image moved by its own whole-pixel offset in [-pixels, pixels] on both axes: a
    random crop of the image padded with its edge (background) pixels, gathered in one index."""
    n, _, height, width = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * pixels + 1, (n,), generator=generator, device=generator.device).to(x.device)
    dx = torch.randint(0, 2 * pixels + 1, (n,), generator=generator, device=generator.device).to(x.device)
    rows = (dy[:, None] + torch.arange(height, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[batch, torch.zeros_like(batch), rows, cols]


def flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Half the images (at random) mirrored left-right."""
    mirrored = (torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5).to(x.device)
    return torch.where(mirrored[:, None, None, None], x.flip(-1), x)


def erase(x: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """With probability p per image, one random rectangle (ERASE_AREA, ERASE_ASPECT) set to 0."""
    n, _, height, width = x.shape
    area = uniform(n, *ERASE_AREA, generator) * height * width
    aspect = torch.exp(uniform(n, math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1]), generator))
    h = torch.sqrt(area * aspect).clamp(1, height)
    w = torch.sqrt(area / aspect).clamp(1, width)
    top = torch.rand(n, generator=generator, device=generator.device) * (height - h)
    left = torch.rand(n, generator=generator, device=generator.device) * (width - w)
    chosen = torch.rand(n, generator=generator, device=generator.device) < p
    ys = torch.arange(height, device=generator.device)[None, :]
    xs = torch.arange(width, device=generator.device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + h)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + w)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]).to(x.device)
    return x.masked_fill(mask[:, None], 0.0)


def is_active(s: TrainSettings) -> bool:
    return s.augment != "none" or s.erasing > 0 or s.flip


def apply(x: Tensor, s: TrainSettings, generator: torch.Generator) -> Tensor:
    """A training batch of images (N, C, H, W) augmented as `s` says."""
    if s.augment == "shift":
        x = shift(x, generator)
    elif s.augment != "none":
        x = affine(x, s.augment, generator)
    if s.flip:
        x = flip(x, generator)
    if s.erasing > 0:
        x = erase(x, s.erasing, generator)
    return x
