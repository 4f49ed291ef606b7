"""Parsing ``when:`` conditions (``NAME OP VALUE``) of a search space file."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import yaml

from digitsearch.errors import UserError
from digitsearch.spaces._util import SCALAR_TYPES, is_number, one_line, same, show
from digitsearch.spaces.model import CONSTANT, Condition, Param

OPS: tuple[str, ...] = ("==", "!=", ">=", "<=", ">", "<", "in")
_ORDER_OPS = frozenset({">=", "<=", ">", "<"})
_IN_RE = re.compile(r"^\s*(?P<name>\S+)\s+in\s+(?P<value>.+?)\s*$", re.S)
_CMP_RE = re.compile(r"^\s*(?P<name>[^\s=!<>]+)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.+?)\s*$", re.S)


def parse_condition(
    name: str, raw: object, declared: Mapping[str, Param], names: list[str], pfail: Callable[[str, str], UserError]
) -> Condition:
    """The ``when:`` of parameter ``name`` as a :class:`Condition` on a parameter in ``declared``.

    ``names`` is every parameter name in the file (to tell "declared later" from "unknown");
    ``pfail(name, message)`` builds the error for a bad condition.
    """
    if not isinstance(raw, str):
        raise pfail(name, f"'when' must be a quoted condition such as \"cnn.depth >= 3\", not {show(raw)}")
    text = one_line(raw)
    m = _IN_RE.match(text)
    if m:
        ref, op, vtext = m.group("name"), "in", m.group("value")
    else:
        m = _CMP_RE.match(text)
        if not m:
            raise pfail(
                name,
                f"cannot parse condition '{text}'; write 'NAME OP VALUE' with OP one of "
                f"{' '.join(OPS)}, e.g. \"cnn.depth >= 3\"",
            )
        ref, op, vtext = m.group("name"), m.group("op"), m.group("value")

    if ref == name:
        raise pfail(name, f"condition '{text}' refers to the parameter itself; refer to one declared above")
    if ref not in declared:
        if ref in names:
            raise pfail(
                name,
                f"condition '{text}' refers to '{ref}', which is declared later; move '{ref}' above '{name}'",
            )
        raise pfail(
            name, f"condition '{text}' refers to unknown parameter '{ref}'; declare '{ref}' above '{name}' "
                  "or fix the name"
        )

    try:
        value = yaml.safe_load(vtext)
    except yaml.YAMLError:
        raise pfail(name, f"cannot parse the value in condition '{text}'; write a plain value or a list "
                          "like [a, b]") from None

    value = _check_value(name, text, op, value, ref, declared[ref], pfail)
    return Condition(name=ref, op=op, value=value, text=f"{ref} {op} {vtext}")


def _check_value(name: str, text: str, op: str, value: object, ref: str, target: Param,
                 pfail: Callable[[str, str], UserError]) -> object:
    """The condition's value (a tuple for `in`), checked against the parameter it tests."""
    if op == "in":
        if not isinstance(value, list) or not value:
            raise pfail(name, f"condition '{text}': 'in' needs a non-empty list such as [max, avg]; "
                              "use == for one value")
        items = value
        value = tuple(value)
    else:
        if isinstance(value, (list, dict)):
            raise pfail(name, f"condition '{text}': {op} needs a single value; use 'in' for a list")
        items = [value]
    for v in items:
        if not isinstance(v, SCALAR_TYPES):
            raise pfail(name, f"condition '{text}': values must be scalars, not {show(v)}")
    if op in _ORDER_OPS:
        if not is_number(value):
            raise pfail(name, f"condition '{text}': {op} needs a number; use == or 'in' for other values")
        numeric = target.kind in ("uniform", "loguniform", "int") or (
            target.kind == "choice" and all(is_number(v) for v in target.values)
        ) or (target.kind == CONSTANT and is_number(target.value))
        if not numeric:
            raise pfail(name, f"condition '{text}': '{ref}' is not numeric, so {op} never holds; use == or 'in'")
    elif target.kind == "choice":
        for v in items:
            if not any(same(v, c) for c in target.values):
                raise pfail(
                    name,
                    f"condition '{text}': {show(v)} is not one of the values of '{ref}' "
                    f"({show(list(target.values))}); fix the value",
                )
    return value
