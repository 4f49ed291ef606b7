"""Shared training blocks: `training: images` in a space adds the training settings of
search_spaces/training/images.yaml, so the ranges every image space searches live in one file.

A space names a built-in block by its name, or its own block by a path (relative to the
space's file or the working directory)."""
from __future__ import annotations

from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.spaces.folder import BUILTIN_DIR

FOLDER = "training"


def builtin_blocks(spaces_dir: Path) -> dict[str, Path]:
    folder = spaces_dir / FOLDER
    return {f.stem: f for f in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def find_block(name: object, shown: str) -> tuple[Path, str]:
    """(the block's file, how messages name it) for `training: name` in space file `shown`."""
    builtins = builtin_blocks(BUILTIN_DIR)
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{shown}: 'training' names a shared training block, e.g. 'training: images' "
                        f"(built-in blocks: {', '.join(builtins)})")
    if name in builtins:
        return builtins[name], str(builtins[name])
    candidates = [Path(shown).parent / name, Path(name)]
    for path in candidates:
        if path.is_file():
            return path, str(path)
    raise UserError(f"{shown}: training block {name!r} not found; built-in blocks are {', '.join(builtins)}, "
                    "or give the path of a YAML file with a 'params:' of training settings")
