"""Small value helpers shared by the model and the parser (private to the package)."""

from __future__ import annotations

import yaml

#: Types a choice value, a condition value or a starting-point value may have.
SCALAR_TYPES = (str, int, float, bool, type(None))


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same(a: object, b: object) -> bool:
    """Equality that keeps booleans apart from numbers (``True`` is not ``1`` here)."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values
        return False


def show(v: object) -> str:
    """A value the way one would write it in the YAML file."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (int, str)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    return one_line(yaml.safe_dump(v, default_flow_style=True, width=10**9)).removesuffix(" ...")
