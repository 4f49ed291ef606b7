"""Validating the ``start:`` points of a search space file.

``start:`` is a list of partial configs (searched parameter name -> value) that the
search evaluates first (Ray ``OptunaSearch(points_to_evaluate=...)``, which calls
``optuna.Study.enqueue_trial``).  Optuna uses an enqueued value as-is, and only warns
when it is out of range, so every value is checked here against its parameter: the
name must be a searched parameter, the value must be one Optuna could have sampled,
and the parameter must not be switched off by its ``when`` given the point's other
values.  A parameter whose condition depends on a value the point leaves out is
allowed: it is used if the sampler's choice makes it active.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence

from digitsearch.errors import UserError
from digitsearch.spaces._util import SCALAR_TYPES, is_number, one_line, same, show
from digitsearch.spaces.model import CONSTANT, Param

#: Optuna's own tolerance for "on the step grid" of a float (``FloatDistribution._contains``).
_GRID_TOL = 1.0e-8
_UNKNOWN = object()  # a value the point leaves to the sampler


class _Bad(Exception):
    """A problem with one parameter of a point; the caller adds file, point and name."""


def check_start(
    raw: object, entries: Sequence[Param], *, shown: str, lines: Sequence[tuple[int, dict[str, int]]]
) -> tuple[dict[str, object], ...]:
    """The validated points of ``start:`` (``raw``), each as a dict in the point's own key order.

    ``entries`` are the space's entries in file order; ``lines`` (from the parser) give
    the line of each point and of its keys, for messages.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UserError(one_line(
            f"{shown}: 'start' must be a list of points, each a mapping of parameter name -> value, "
            f"not a {type(raw).__name__}; write '- {{cnn.depth: 2, lr: 0.001}}' lines under 'start:'"
        ))
    by_name = {p.name: p for p in entries}
    points = []
    for index, point in enumerate(raw, start=1):
        point_line, key_lines = lines[index - 1] if index - 1 < len(lines) else (0, {})
        where = _Where(shown, index, point_line, key_lines)
        points.append(_check_point(point, entries, by_name, where))
    return tuple(points)


class _Where:
    """Builds the one-line error for point ``index`` (and one of its parameters)."""

    def __init__(self, shown: str, index: int, line: int, key_lines: dict[str, int]):
        self.shown, self.index, self.line, self.key_lines = shown, index, line, key_lines

    def fail(self, message: str, name: str | None = None) -> UserError:
        line = self.key_lines.get(name, self.line) if name is not None else self.line
        where = f"{self.shown}:{line}" if line else self.shown
        what = f"start point {self.index}" + (f": parameter '{name}'" if name is not None else "")
        return UserError(one_line(f"{where}: {what}: {message}"))


def _check_point(
    point: object, entries: Sequence[Param], by_name: dict[str, Param], where: _Where
) -> dict[str, object]:
    fail = where.fail
    if not isinstance(point, dict):
        raise fail(
            f"a point must be a mapping of parameter name -> value, not {show(point)}; "
            "write e.g. '- {cnn.depth: 2, lr: 0.001}'"
        )
    if not point:
        raise fail("the point is empty; give at least one parameter value, or remove the point")
    searched = [p.name for p in entries if p.kind != CONSTANT]
    for key in point:
        if not isinstance(key, str) or key not in by_name:
            close = difflib.get_close_matches(str(key), searched, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "use a name declared under 'params:'"
            raise fail(f"unknown parameter name; {hint}", name=str(key))
        if by_name[key].kind == CONSTANT:
            raise fail(
                f"a constant (= {show(by_name[key].value)}), not a searched parameter; remove it from the "
                "point (constants are in every config anyway)",
                name=key,
            )

    values: dict[str, object] = {}
    # name -> (present, value): present is True (surely in the trial), None (maybe), or
    # False (surely not); value is _UNKNOWN where the sampler will choose it
    state: dict[str, tuple[bool | None, object]] = {}
    for p in entries:
        active, why = _active(p, state)
        if p.name in point:
            if active is False:
                raise fail(f"inactive in this point: {why}; remove '{p.name}' from the point", name=p.name)
            try:
                values[p.name] = _check_value(p, point[p.name])
            except _Bad as e:
                raise fail(str(e), name=p.name) from None
        if active is False:
            continue
        value = values.get(p.name, p.value if p.kind == CONSTANT else _UNKNOWN)
        state[p.name] = (active, value)
    return {key: values[key] for key in point}


def _active(p: Param, state: dict[str, tuple[bool | None, object]]) -> tuple[bool | None, str]:
    """Whether ``p`` is in trials that start from this point: True, False, or None (it depends)."""
    cond = p.when
    if cond is None:
        return True, ""
    present, value = state.get(cond.name, (False, _UNKNOWN))
    if present is False:
        return False, f"its condition '{cond}' is false because '{cond.name}' is itself inactive here"
    if value is _UNKNOWN:
        return None, ""
    if not cond.holds({cond.name: value}):
        return False, f"its condition '{cond}' is false with {cond.name} = {show(value)}"
    return present, ""


def _check_value(p: Param, v: object) -> object:
    """``v`` as Optuna should get it for ``p``; raises _Bad when Optuna could not sample it."""
    if not isinstance(v, SCALAR_TYPES):
        raise _Bad(f"needs a single value (text, a number, true/false, null), not {show(v)}")
    if p.kind == "choice":
        for c in p.values:  # prefer the exact type, then equal numbers (3.0 for 3)
            if same(v, c) and type(v) is type(c):
                return c
        for c in p.values:
            if same(v, c):
                return c
        raise _Bad(f"{_quoted(v)} is not one of its values {show(list(p.values))}; use one of them")
    if p.kind == "int":
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            raise _Bad(f"type int needs a whole number written without a decimal point, not {show(v)}; write {int(v)}")
        if not is_number(v) or not isinstance(v, int):
            raise _Bad(f"type int needs a whole number, not {_quoted(v)}")
        if not p.low <= v <= p.high:  # type: ignore[operator]
            raise _Bad(f"{v} is outside its range {p.low}..{p.high}; use a value in that range, "
                       "or widen the range under 'params:'")
        step = p.step or 1
        if (v - p.low) % step:  # type: ignore[operator]
            below = v - (v - p.low) % step  # type: ignore[operator]
            raise _Bad(
                f"{v} is not on its step grid ({p.low}, {p.low + step}, ... {p.high}); use {below} or {below + step}"
            )
        return v
    # uniform / loguniform
    if isinstance(v, str):
        try:
            number = float(v.strip())  # PyYAML reads 1e-4 (no dot) as a string
        except ValueError:
            raise _Bad(f"type {p.kind} needs a number, not '{v}'; write e.g. 1.0e-4") from None
    elif is_number(v):
        number = float(v)  # type: ignore[arg-type]
    else:
        raise _Bad(f"type {p.kind} needs a number, not {_quoted(v)}")
    if not math.isfinite(number):
        raise _Bad(f"type {p.kind} needs a finite number, not {show(v)}")
    if not p.low <= number <= p.high:  # type: ignore[operator]
        raise _Bad(
            f"{show(number)} is outside its range {show(p.low)}..{show(p.high)}; use a value in that range, "
            "or widen the range under 'params:'"
        )
    if p.step is not None:
        k = (number - p.low) / p.step  # type: ignore[operator]
        if abs(k - round(k)) >= _GRID_TOL:
            below = p.low + math.floor(k) * p.step  # type: ignore[operator]
            raise _Bad(
                f"{show(number)} is not on its step grid ({show(p.low)} + k * {show(p.step)}); "
                f"use {show(round(below, 12))} or {show(round(below + p.step, 12))}"
            )
    return number


def _quoted(v: object) -> str:
    """``show(v)``, with text in quotes so that '3' and 3 read differently."""
    return f"'{v}'" if isinstance(v, str) else show(v)
