"""How `predict` treats a folder of the user's own images: the --invert modes (a light module,
so the CLI can offer them as choices without importing the image readers)."""
from __future__ import annotations

from enum import Enum


class Invert(str, Enum):
    """auto inverts dark ink on light paper to MNIST's white on black; yes and no force it."""

    auto = "auto"
    yes = "yes"
    no = "no"


INVERT_CHOICES = tuple(mode.value for mode in Invert)
