"""Reading a search space YAML file into a validated :class:`SearchSpace`.

Every problem raises :class:`~digitsearch.errors.UserError` with one line naming the
file (with the line number where known), the parameter, the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from digitsearch.errors import UserError
from digitsearch.spaces._util import SCALAR_TYPES, is_number, one_line, same, show
from digitsearch.spaces.conditions import parse_condition
from digitsearch.spaces.include import Included, included, usable_points
from digitsearch.spaces.model import CONSTANT, KINDS, MIXED, Condition, Param, SearchSpace
from digitsearch.spaces.start import check_start
from digitsearch.spaces.training import find_block
from digitsearch.spaces.yaml_source import Lines, StrictLoader, lines_of

_NAME_RE = re.compile(r"[A-Za-z0-9_.]+")
_TOP_KEYS = ("family", "description", "include", "training", "limits", "params", "start")
# a shared training block (search_spaces/training/<name>.yaml) holds only these
_TRAINING_TOP_KEYS = ("description", "params")
# budget defaults a space may set for its trials (--max-params / --max-mflops still win)
_LIMIT_KEYS = ("max_params", "max_mflops")
_ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": ("type", "low", "high", "step", "when"),
    "loguniform": ("type", "low", "high", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
    "choice": ("type", "values", "when"),
    CONSTANT: ("type", "value", "when"),
}


def load_file(path: Path, *, name: str, shown: str | Path,
              load_included: Callable[[str], SearchSpace] | None = None) -> SearchSpace:
    """Read, parse and validate the search space file ``path`` (``shown`` is how messages name it).

    ``load_included`` finds the spaces an ``include:`` names (the caller's ``load``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{shown}: not a UTF-8 text file; give a search space YAML file") from None
    except OSError as e:
        raise UserError(f"{shown}: cannot read the file ({one_line(e.strerror or e)}); "
                        "check the path and permissions") from None
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = one_line(getattr(e, "problem", None) or str(e))
        fix = "keep only one of them" if problem.startswith("duplicate key") else "fix the syntax there"
        raise UserError(f"{shown}: not valid YAML{where}: {problem}; {fix}") from None
    return _Parser(shown, lines_of(text), load_included).space(data, name=name, path=path.resolve())


class _Parser:
    def __init__(self, shown: str | Path, lines: Lines, load_included: Callable[[str], SearchSpace] | None = None):
        self.shown = str(shown)
        self.lines = lines
        self.load_included = load_included

    # -- errors ----------------------------------------------------------------------

    def fail(self, message: str) -> UserError:
        return UserError(one_line(f"{self.shown}: {message}"))

    def pfail(self, name: str, message: str) -> UserError:
        line = self.lines.params.get(name)
        where = f"{self.shown}:{line}" if line else self.shown
        return UserError(one_line(f"{where}: parameter '{name}': {message}"))

    # -- top level -------------------------------------------------------------------

    def space(self, data: object, *, name: str, path: Path) -> SearchSpace:
        self.top_level(data)
        family, mixed = self.family(data)
        description = self.description(data)
        raw = self.raw_params(data)
        entries, included_points, family_limits = self.entries(data, raw)
        if mixed:
            family_entry = next(p for p in entries if p.name == "family")
            if family_entry.when is not None or family_entry.kind not in ("choice", CONSTANT):
                raise self.pfail("family", "must be a choice of model families (or one constant) without "
                                           "'when:'; every trial needs a family")
        points = check_start(data.get("start"), entries, shown=self.shown, lines=self.lines.start)
        return SearchSpace(
            name=name,
            family=family.strip(),
            description=one_line(description),
            path=path,
            params=tuple(p for p in entries if p.kind != CONSTANT),
            constants={p.name: p.value for p in entries if p.kind == CONSTANT},
            entries=tuple(entries),
            starting_points=(*usable_points(included_points, entries), *points),
            limits=self.limits(data.get("limits")),
            family_limits=family_limits,
        )

    def top_level(self, data: object) -> None:
        if data is None:
            raise self.fail("the file is empty; write a mapping with 'family:' and 'params:' "
                            "(see search_spaces/README.md)")
        if not isinstance(data, dict):
            raise self.fail(
                f"the top level is a {type(data).__name__}, not a mapping; "
                "write 'family:', 'description:' and 'params:' as top-level keys"
            )
        unknown = [str(k) for k in data if k not in _TOP_KEYS]
        if unknown:
            raise self.fail(
                f"unknown top-level key '{unknown[0]}'; the allowed keys are {', '.join(_TOP_KEYS)}"
            )

    def family(self, data: dict) -> tuple[str, bool]:
        """(the space's family, or MIXED for a space across families; whether it is mixed)."""
        family = data.get("family")
        declares_family = isinstance(data.get("params"), dict) and "family" in data["params"]
        if declares_family and "include" in data:
            raise self.pfail("family", "'include' makes the family choice from the included spaces; "
                                       "remove this parameter")
        mixed = declares_family or "include" in data
        if family is not None and mixed:
            raise self.fail("'family' is both a top-level key and a parameter; keep the parameter "
                            "(a space across families) or the key (a space for one family)")
        if family is None and not mixed:
            raise self.fail("missing 'family'; add e.g. 'family: cnn' (the model family the space is for), "
                            "or a 'family' parameter under 'params:' for a space across families")
        if mixed:
            return MIXED, True
        if not isinstance(family, str) or not family.strip():
            raise self.fail(f"'family' must be a model name such as cnn, not {show(family)!r}")
        return family, False

    def description(self, data: dict) -> str:
        description = data.get("description", "")
        if description is None:
            return ""
        if not isinstance(description, str):
            raise self.fail("'description' must be one line of text; quote it if it looks like a number")
        return description

    def raw_params(self, data: dict) -> dict:
        if "params" not in data and ("include" in data or "training" in data):
            return {}  # everything comes from the included spaces and the training block
        if "params" not in data:
            raise self.fail("missing 'params'; add a 'params:' mapping of parameter name -> spec")
        raw = data["params"]
        if raw is None or (isinstance(raw, dict) and not raw):
            raise self.fail("'params' is empty; declare at least one parameter under 'params:'")
        if not isinstance(raw, dict):
            raise self.fail(
                f"'params' must be a mapping of parameter name -> spec, not a {type(raw).__name__}; "
                "write one 'name: {type: ...}' per line under 'params:'"
            )
        return raw

    def entries(self, data: dict, raw: dict) -> Included:
        """Every entry in file order (the included spaces' first), the included starting points
        and the included spaces' limits."""
        entries: list[Param] = []
        included_points: list[dict] = []
        family_limits: dict[str, dict[str, float]] = {}
        if "include" in data:
            if self.load_included is None:
                raise self.fail("'include' needs spaces to include from; load the file with digitsearch.spaces.load")
            entries, included_points, family_limits = included(data["include"], self.shown, self.load_included)
        declared: dict[str, Param] = {p.name: p for p in entries}
        sources = self.with_training_block(data, raw)
        names = [*declared, *(str(key) for key, _, _ in sources)]
        for key, spec, parser in sources:
            pname = parser.check_name(key)
            if pname in declared:
                raise parser.pfail(pname, "is already declared by an included space; remove it here")
            p = dataclasses.replace(parser.param(pname, spec, declared, names), where=parser.where(pname))
            entries.append(p)
            declared[pname] = p
        return Included(entries, included_points, family_limits)

    def with_training_block(self, data: dict, raw: dict) -> list[tuple[object, object, "_Parser"]]:
        """(name, spec, the parser whose file declares it) for every entry of `params:` and of the
        shared training block `training:` names. The block's entries come last, in its order; an
        entry of `params:` with the same name replaces the block's (e.g. a lower lr range)."""
        if data.get("training") is None:
            return [(key, spec, self) for key, spec in raw.items()]
        block, block_parser = self.training_block(data["training"])
        own = [(key, spec, self) for key, spec in raw.items() if key not in block]
        return own + [(key, raw[key], self) if key in raw else (key, spec, block_parser) for key, spec in block.items()]

    def training_block(self, name: object) -> tuple[dict, "_Parser"]:
        path, shown = find_block(name, self.shown)
        text = path.read_text(encoding="utf-8")
        block = _Parser(shown, lines_of(text))
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - SafeLoader subclass
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict) or not data["params"]:
            raise block.fail("a training block is a mapping with a non-empty 'params:' of training settings")
        unknown = [str(k) for k in data if k not in _TRAINING_TOP_KEYS]
        if unknown:
            raise block.fail(f"unknown key '{unknown[0]}' in a training block; "
                             f"it holds {', '.join(_TRAINING_TOP_KEYS)}")
        prefixed = [str(k) for k in data["params"] if "." in str(k)]
        if prefixed:
            raise block.pfail(prefixed[0], "a training block holds training settings only (no family prefix); "
                                           "declare model parameters in the space's own params:")
        return data["params"], block

    def where(self, name: str) -> str:
        line = self.lines.params.get(name)
        return f"{self.shown}:{line}" if line else self.shown

    def limits(self, raw: object) -> dict[str, float]:
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not raw:
            raise self.fail("'limits' must be a mapping such as {max_mflops: 3000, max_params: 20000000}")
        for key, value in raw.items():
            if key not in _LIMIT_KEYS:
                raise self.fail(f"unknown limit '{key}'; the limits are {', '.join(_LIMIT_KEYS)}")
            if not is_number(value) or isinstance(value, bool) or value <= 0:
                raise self.fail(f"limit '{key}' must be a number above 0, not {show(value)}")
        return {str(k): v for k, v in raw.items()}

    def check_name(self, key: object) -> str:
        if not isinstance(key, str):
            raise self.fail(
                f"parameter name {show(key)} is not a string; quote it or use a name made of "
                "letters, digits, '_' and '.'"
            )
        if "/" in key:
            raise self.pfail(
                key,
                "names may not contain '/' (Ray Tune uses '/' to nest config dicts); "
                f"use '.' instead, e.g. '{key.replace('/', '.')}'",
            )
        if not _NAME_RE.fullmatch(key):
            raise self.pfail(key, "names may only use letters, digits, '_' and '.'; rename it")
        return key

    # -- one parameter ---------------------------------------------------------------

    def param(self, name: str, spec: object, declared: Mapping[str, Param], names: list[str]) -> Param:
        if not isinstance(spec, dict):
            return Param(name=name, kind=CONSTANT, value=spec)  # a plain scalar / list: a constant

        kind = spec.get("type")
        if kind is None:
            if "value" in spec:
                kind = CONSTANT
            else:
                raise self.pfail(
                    name,
                    f"missing 'type'; use one of {', '.join(KINDS)} "
                    "(or '{value: ...}' for a constant mapping)",
                )
        if not isinstance(kind, str) or kind not in _ALLOWED_KEYS:
            raise self.pfail(
                name,
                f"unknown type '{show(kind)}'; the known types are {', '.join(KINDS)} "
                "(a plain value is a constant)",
            )
        allowed = _ALLOWED_KEYS[kind]
        for k in spec:
            if k not in allowed:
                raise self.pfail(
                    name, f"unknown key '{show(k)}' for type {kind}; the allowed keys are {', '.join(allowed)}"
                )

        when = None
        if "when" in spec:
            when = parse_condition(name, spec["when"], declared, names, self.pfail)

        if kind == CONSTANT:
            if "value" not in spec:
                raise self.pfail(name, "a constant needs 'value'; write '{type: constant, value: ...}' "
                                       "or a plain value")
            return Param(name=name, kind=CONSTANT, value=spec["value"], when=when)
        if kind == "choice":
            return Param(name=name, kind=kind, values=self.choices(name, spec), when=when)
        for bound in ("low", "high"):
            if bound not in spec or spec[bound] is None:
                example = "low: 1, high: 5" if kind == "int" else "low: 0.0, high: 1.0"
                raise self.pfail(name, f"type {kind} needs '{bound}'; add e.g. '{example}'")
        if kind == "int":
            return self.int_param(name, spec, when)
        return self.float_param(name, kind, spec, when)

    def float_param(self, name: str, kind: str, spec: dict, when: Condition | None) -> Param:
        low = self.number(name, "low", spec["low"])
        high = self.number(name, "high", spec["high"])
        if low > high:
            raise self.pfail(name, f"low ({show(low)}) is greater than high ({show(high)}); swap them")
        if low == high:
            raise self.pfail(
                name,
                f"low and high are both {show(low)}, so there is nothing to search; "
                f"use a constant instead ('{name}: {show(low)}')",
            )
        if kind == "loguniform":
            if low <= 0:
                raise self.pfail(
                    name, f"loguniform needs low > 0 (got {show(low)}); raise low, or use type uniform"
                )
            return Param(name=name, kind=kind, low=low, high=high, log=True, when=when)
        step = None
        if spec.get("step") is not None:
            step = self.number(name, "step", spec["step"])
            if step <= 0:
                raise self.pfail(name, f"step must be > 0 (got {show(step)}); use a positive step or drop it")
            ratio = (high - low) / step
            if abs(ratio - round(ratio)) > 1e-6:
                raise self.pfail(
                    name,
                    f"high - low ({show(high - low)}) is not a multiple of step ({show(step)}); "
                    "change high or step so the range splits into whole steps",
                )
        return Param(name=name, kind=kind, low=low, high=high, step=step, when=when)

    def int_param(self, name: str, spec: dict, when: Condition | None) -> Param:
        low = self.integer(name, "low", spec["low"])
        high = self.integer(name, "high", spec["high"])
        if low > high:
            raise self.pfail(name, f"low ({low}) is greater than high ({high}); swap them")
        log = spec.get("log", False)
        if log is None:
            log = False
        if not isinstance(log, bool):
            raise self.pfail(name, f"'log' must be true or false, not {show(log)}")
        step = None
        if spec.get("step") is not None:
            step = self.integer(name, "step", spec["step"])
            if step <= 0:
                raise self.pfail(name, f"step must be a positive integer (got {step}); fix it or drop it")
            if log and step != 1:
                raise self.pfail(name, "'log: true' cannot be combined with a step; drop one of them")
            if (high - low) % step:
                fixed = low + (high - low) // step * step
                raise self.pfail(
                    name,
                    f"high - low ({high - low}) is not a multiple of step ({step}); "
                    f"use high: {fixed} or another step",
                )
        if log and low < 1:
            raise self.pfail(name, f"'log: true' needs low >= 1 (got {low}); raise low or drop 'log'")
        return Param(name=name, kind="int", low=low, high=high, step=step, log=log, when=when)

    def number(self, name: str, key: str, raw: object) -> float:
        if is_number(raw):
            value = float(raw)  # type: ignore[arg-type]
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())  # PyYAML reads 1e-4 (no dot) as a string
            except ValueError:
                raise self.pfail(name, f"{key} must be a number, not '{raw}'; write e.g. 1.0e-4") from None
        else:
            raise self.pfail(name, f"{key} must be a number, not {show(raw)}; write e.g. 1.0e-4")
        if not math.isfinite(value):
            raise self.pfail(name, f"{key} must be a finite number, not {show(raw)}")
        return value

    def integer(self, name: str, key: str, raw: object) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        value = self.number(name, key, raw)
        if not value.is_integer():
            raise self.pfail(name, f"{key} must be a whole number for type int, not {show(raw)}; "
                                   "use type uniform for floats")
        return int(value)

    def choices(self, name: str, spec: dict) -> tuple:
        if "values" not in spec or spec["values"] is None:
            raise self.pfail(name, "type choice needs 'values'; add e.g. 'values: [3, 5]'")
        values = spec["values"]
        if not isinstance(values, list):
            raise self.pfail(name, f"'values' must be a list such as [3, 5], not {show(values)}")
        if not values:
            raise self.pfail(name, "'values' is empty; list at least one value, or use a constant")
        seen: list[object] = []
        for v in values:
            if not isinstance(v, SCALAR_TYPES):
                raise self.pfail(
                    name, f"choice values must be scalars (text, numbers, true/false, null), not {show(v)}"
                )
            if any(same(v, s) and type(v) is type(s) for s in seen):
                raise self.pfail(name, f"value {show(v)} is listed twice in 'values'; remove the duplicate")
            seen.append(v)
        return tuple(values)
