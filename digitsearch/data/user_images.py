"""A folder of the user's own digit images (photos, scans, drawings) made to look like MNIST.

A model trained on MNIST has only ever seen one kind of picture: a white digit on black,
its longer side scaled to 20 px and its centre of mass in the middle of a 28x28 frame
(LeCun et al.'s recipe). A phone photo of a digit written on paper is the opposite on
every count: dark ink on light paper, anywhere in a large frame, any size. So each file is
read as grayscale, inverted when it is dark-on-light, cleaned of its paper tone and specks,
cropped to the ink, scaled and centred the MNIST way. One image per file, one digit each.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from digitsearch.data.invert import INVERT_CHOICES
from digitsearch.errors import UserError

SUFFIXES = (".png", ".jpg", ".jpeg")
MNIST_FRAME, MNIST_BOX = 28, 20  # the digit's longer side fills 20 of the frame's 28 px
MAX_SIDE = 1024  # larger photos are shrunk first: the digit ends up 20 px anyway
BORDER = 0.05  # the outer 5% of each side is taken to be background (paper)
FAINT = 0.25  # ink below this share of the darkest stroke is paper texture or shadow
SPECK = 0.02  # blobs under 2% of the ink's area are dust or noise, not part of the digit


def list_images(folder: Path) -> list[Path]:
    """The folder's PNG/JPEG files, sorted by name; none -> UserError."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]  # .DS_Store and the like
    if not entries:
        raise UserError(f"{folder}: empty folder; put PNG or JPEG images of single digits in it")
    files = sorted(p for p in entries if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no PNG or JPEG images (and no IDX files) in it; give a folder of "
                        f"digit images ({', '.join(SUFFIXES)}), a folder of IDX files or a Kaggle-style .csv")
    return files


def read_folder(folder: Path, size: int, invert: str = "auto") -> tuple[list[str], np.ndarray]:
    """(file names, uint8 (N, size, size) images, white ink on black) for every image in `folder`."""
    check_invert(invert)
    files = list_images(folder)
    images = np.stack([mnist_like(load_gray(path), size, invert, path) for path in files])
    return [path.name for path in files], images


def check_invert(invert: str) -> None:
    if invert not in INVERT_CHOICES:
        raise UserError(f"--invert must be one of {', '.join(INVERT_CHOICES)} (got {invert!r})")


def load_gray(path: Path) -> np.ndarray:
    """float (H, W) in [0, 1], 1 = white; an unreadable file -> UserError naming it."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)  # phones store portrait shots sideways plus a tag
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"{path}: not an image Pillow can read ({type(err).__name__}); "
                        "save it as PNG or JPEG") from None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # drawing apps save ink on transparent pixels, whose hidden colour is often black:
        # put them on white paper first, as they are shown
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    image = image.convert("L")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def border_level(gray: np.ndarray) -> float:
    """Median of the outer frame: the paper (or screen background) a single centred digit sits on."""
    height, width = gray.shape
    band = max(1, round(BORDER * min(height, width)))
    frame = np.concatenate([gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()])
    return float(np.median(frame))


def wants_invert(gray: np.ndarray, invert: str) -> bool:
    """auto: a light background means dark ink on paper, the opposite of MNIST's white on black."""
    if invert == "auto":
        return border_level(gray) > 0.5
    return invert == "yes"


def ink_map(gray: np.ndarray, invert: bool) -> np.ndarray:
    """float ink in [0, 1] on a zero background: paper tone subtracted, contrast stretched,
    faint texture and small specks dropped (they would stretch the bounding box)."""
    ink = 1.0 - gray if invert else gray
    ink = ink - border_level(ink)  # grey paper or a shadowed photo becomes 0, not a dim glow
    peak = float(ink.max())
    if peak <= 0.05:
        return np.zeros_like(ink)
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < FAINT] = 0.0
    blobs, count = ndimage.label(ink > 0)
    if count > 1:
        areas = ndimage.sum_labels(np.ones_like(ink), blobs, index=np.arange(1, count + 1))
        small = np.flatnonzero(areas < SPECK * areas.sum()) + 1
        ink[np.isin(blobs, small)] = 0.0
    return ink


def centre(ink: np.ndarray, size: int) -> np.ndarray:
    """MNIST's normalisation: crop to the ink, longer side to 20/28 of the frame (aspect kept),
    centre of mass at the frame's centre. float (size, size)."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, round(size * MNIST_BOX / MNIST_FRAME))
    scale = box / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    # Pillow filters over every source pixel when shrinking: thin strokes fade, not vanish
    source = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32))
    resized = source.resize((width, height), Image.Resampling.LANCZOS)
    patch = np.clip(np.asarray(resized), 0.0, 1.0)  # Lanczos overshoots a little at stroke edges
    com_row, com_col = ndimage.center_of_mass(patch) if patch.any() else ((height - 1) / 2, (width - 1) / 2)
    # MNIST's centres of mass sit at (14, 14) in index terms: size / 2, not (size - 1) / 2
    top = int(np.clip(round(size / 2 - com_row), 0, size - height))
    left = int(np.clip(round(size / 2 - com_col), 0, size - width))
    frame = np.zeros((size, size), dtype=np.float32)
    frame[top:top + height, left:left + width] = patch
    return frame


def mnist_like(gray: np.ndarray, size: int, invert: str, path: Path) -> np.ndarray:
    """One file's grayscale -> uint8 (size, size), white digit on black; a blank page -> UserError."""
    ink = ink_map(gray, wants_invert(gray, invert))
    if not ink.any():
        raise UserError(f"{path}: no digit found (the image is blank or one flat tone); "
                        "crop it to one digit written in dark ink on light paper, or light on dark")
    return np.rint(centre(ink, size) * 255.0).astype(np.uint8)
