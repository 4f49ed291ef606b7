"""What plots and reports call each class: a known set's names, the names a file beside the
data gives, or the label itself.

Files read beside the data (the folder of an IDX set or of class folders, the CSV's folder):
  classes.txt   one name per line; line k names class k (the k-th label in sorted order),
                or, when the labels are whole numbers, line n names label n (0-based);
  *mapping.txt  EMNIST's "label code [code...]" lines (character codes: "1 65 97" -> "A/a"),
                or "label name" lines.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digitsearch.errors import UserError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
CLASSES_FILE = "classes.txt"


@dataclass(frozen=True)
class Naming:
    """Where names may come from: a known set's (for its labels 0..K-1) and a folder to look in."""

    known: tuple[str, ...] | None = None
    beside: Path | None = None


def for_classes(classes: list, naming: Naming, notes: list[str]) -> list[str]:
    """One name per class (class k's label is classes[k])."""
    if naming.known and classes == list(range(len(naming.known))):
        return list(naming.known)
    named = _from_files(naming.beside, classes) if naming.beside else None
    if named is None:
        return [str(c) for c in classes]
    names, path = named
    notes.append(f"class names from {path}")
    return names


def _from_files(folder: Path, classes: list) -> tuple[list[str], Path] | None:
    if not folder.is_dir():
        return None
    listed = folder / CLASSES_FILE
    if listed.is_file():
        return _from_classes_txt(listed, classes), listed
    mapping = sorted(folder.glob("*mapping.txt"))
    if len(mapping) == 1:
        return _from_mapping(mapping[0], classes), mapping[0]
    return None


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({type(exc).__name__}); fix or remove it") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _from_classes_txt(path: Path, classes: list) -> list[str]:
    lines = _lines(path)
    if len(lines) == len(classes):
        return lines
    if all(isinstance(c, int) for c in classes) and min(classes) >= 0 and max(classes) < len(lines):
        return [lines[c] for c in classes]
    raise UserError(f"{path}: has {len(lines)} names but the data has {len(classes)} classes; give one name per "
                    "class (in label order), or one per label 0..max, or remove the file")


def _from_mapping(path: Path, classes: list) -> list[str]:
    names: dict[str, str] = {}
    for number, line in enumerate(_lines(path), 1):
        label, _, rest = line.partition(" ")
        if not rest.strip():
            raise UserError(f"{path}: line {number} ({line!r}) is not 'label name' or 'label code [code...]'; fix it")
        names[label] = _mapped_name(rest.split())
    return [names.get(str(c), str(c)) for c in classes]


def _mapped_name(parts: list[str]) -> str:
    """EMNIST's character codes ("65 97" -> "A/a"), or the name itself."""
    if all(part.isdigit() for part in parts):
        return "/".join(dict.fromkeys(chr(int(part)) for part in parts))
    return " ".join(parts)
