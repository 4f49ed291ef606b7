"""Search spaces: YAML files that say which hyperparameters a search explores.

A search space file (see ``search_spaces/README.md`` for the full format) names a
model family and an ordered mapping of parameters.  Each parameter is either searched
(``uniform``, ``loguniform``, ``int`` or ``choice``) or a constant, and may carry a
``when`` condition on a parameter declared above it.

The loaded :class:`SearchSpace` drives Optuna define-by-run style:
:meth:`SearchSpace.define_by_run` suggests every active parameter in file order and
returns the active constants, which is exactly what Ray Tune's ``OptunaSearch``
expects from a callable ``space``.  Configs are flat: keys are the parameter names
as written (``cnn.depth``, ``lr``); names never contain ``/`` so Ray does not nest them.

Every problem with a file raises :class:`~digitsearch.errors.UserError` with one line
that names the file, the parameter, the problem and the fix.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from digitsearch.errors import UserError

__all__ = [
    "BUILTIN_DIR",
    "Condition",
    "KINDS",
    "Param",
    "SearchSpace",
    "list_spaces",
    "load",
]

#: Distribution types a searched parameter may use, in the order shown in messages.
KINDS: tuple[str, ...] = ("uniform", "loguniform", "int", "choice")
#: The kind given to constants (``Param.kind``); in YAML a constant is a plain value
#: or a mapping ``{value: ..., when: ...}`` (``type: constant`` is optional there).
CONSTANT = "constant"

_OPS: tuple[str, ...] = ("==", "!=", ">=", "<=", ">", "<", "in")
_ORDER_OPS = frozenset({">=", "<=", ">", "<"})
_NAME_RE = re.compile(r"[A-Za-z0-9_.]+")
_IN_RE = re.compile(r"^\s*(?P<name>\S+)\s+in\s+(?P<value>.+?)\s*$", re.S)
_CMP_RE = re.compile(r"^\s*(?P<name>[^\s=!<>]+)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.+?)\s*$", re.S)
_TOP_KEYS = ("family", "description", "params")
_ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": ("type", "low", "high", "step", "when"),
    "loguniform": ("type", "low", "high", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
    "choice": ("type", "values", "when"),
    CONSTANT: ("type", "value", "when"),
}
_SCALAR_TYPES = (str, int, float, bool, type(None))
_YAML_SUFFIXES = (".yaml", ".yml")


# --------------------------------------------------------------------------- helpers


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a: object, b: object) -> bool:
    """Equality that keeps booleans apart from numbers (``True`` is not ``1`` here)."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values
        return False


def _show(v: object) -> str:
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
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return _one_line(yaml.safe_dump(v, default_flow_style=True, width=10**9)).removesuffix(" ...")


# ------------------------------------------------------------------------ dataclasses


@dataclass(frozen=True)
class Condition:
    """``NAME OP VALUE`` from a ``when:``; ``value`` is a tuple for ``in``."""

    name: str
    op: str
    value: object
    text: str = ""

    def holds(self, values: Mapping[str, object]) -> bool:
        """True when the condition holds for ``values``; False when ``name`` is absent."""
        if self.name not in values:
            return False
        actual = values[self.name]
        if self.op == "==":
            return _same(actual, self.value)
        if self.op == "!=":
            return not _same(actual, self.value)
        if self.op == "in":
            return any(_same(actual, v) for v in self.value)  # type: ignore[union-attr]
        if not (_is_number(actual) and _is_number(self.value)):
            return False
        if self.op == ">=":
            return actual >= self.value  # type: ignore[operator]
        if self.op == "<=":
            return actual <= self.value  # type: ignore[operator]
        if self.op == ">":
            return actual > self.value  # type: ignore[operator]
        return actual < self.value  # type: ignore[operator]

    def __str__(self) -> str:
        return self.text or f"{self.name} {self.op} {_show(self.value)}"


@dataclass(frozen=True)
class Param:
    """One entry of a search space.

    ``kind`` is one of :data:`KINDS` for a searched parameter, or ``"constant"``.
    ``low``/``high`` are floats for ``uniform``/``loguniform`` and ints for ``int``;
    ``step`` is None when not given; ``log`` is True for ``loguniform`` and for
    ``int`` with ``log: true``; ``values`` holds the choices of a ``choice``;
    ``value`` holds the value of a constant.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    values: tuple = ()
    value: Any = field(default=None, hash=False)
    when: Condition | None = None

    @property
    def is_constant(self) -> bool:
        return self.kind == CONSTANT

    def active(self, values: Mapping[str, object]) -> bool:
        """Whether this parameter exists given the values chosen so far."""
        return self.when is None or self.when.holds(values)

    def suggest(self, trial: Any) -> object:
        """Ask ``trial`` (an ``optuna.Trial`` or anything with its ``suggest_*``) for a value."""
        if self.kind == "uniform":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step)
        if self.kind == "loguniform":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        raise TypeError(f"{self.name} is a constant, not a searched parameter")

    def describe(self) -> str:
        """``int 16..128 (log)``, ``choice [3, 5]``, ``= 1``: the part after the name."""
        if self.kind == CONSTANT:
            text = f"= {_show(self.value)}"
        elif self.kind == "choice":
            text = f"choice {_show(list(self.values))}"
        else:
            text = f"{self.kind} {_show(self.low)}..{_show(self.high)}"
            if self.step is not None:
                text += f" step {_show(self.step)}"
            if self.log and self.kind == "int":
                text += " (log)"
        if self.when is not None:
            text += f"  when {self.when}"
        return text


@dataclass(frozen=True)
class SearchSpace:
    """A loaded, validated search space.

    ``params`` are the searched parameters and ``constants`` the constants, each in
    file order; ``entries`` is every entry (constants as ``Param(kind="constant")``)
    in file order, which is the order conditions are evaluated in.
    """

    name: str
    family: str
    description: str
    path: Path
    params: tuple[Param, ...]
    constants: dict[str, object] = field(default_factory=dict, hash=False)
    entries: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        if not self.entries:  # built by hand: constants after params, unconditional
            consts = tuple(Param(name=k, kind=CONSTANT, value=v) for k, v in self.constants.items())
            object.__setattr__(self, "entries", tuple(self.params) + consts)

    # -- Optuna / Ray ----------------------------------------------------------------

    def define_by_run(self, trial: Any) -> dict[str, object]:
        """Suggest every active searched parameter on ``trial``; return the active constants.

        Only ``trial.suggest_*`` calls happen here (Ray's ``OptunaSearch`` forbids other
        work); the returned dict is what Ray merges into the trial's config.
        """
        seen: dict[str, object] = {}
        constants: dict[str, object] = {}
        for p in self.entries:
            if not p.active(seen):
                continue
            if p.kind == CONSTANT:
                seen[p.name] = constants[p.name] = copy.deepcopy(p.value)
            else:
                seen[p.name] = p.suggest(trial)
        return constants

    def config_from_params(self, params: Mapping[str, object]) -> dict[str, object]:
        """The flat config a trial with searched values ``params`` gets.

        ``{**active searched params, **active constants}``; keys of ``params`` that are
        not active here are ignored.  A missing active parameter is a UserError.
        """
        seen: dict[str, object] = {}
        searched: dict[str, object] = {}
        constants: dict[str, object] = {}
        for p in self.entries:
            if not p.active(seen):
                continue
            if p.kind == CONSTANT:
                seen[p.name] = constants[p.name] = copy.deepcopy(p.value)
                continue
            if p.name not in params:
                why = f" (its condition '{p.when}' holds)" if p.when is not None else ""
                raise UserError(
                    f"{self.path}: parameter '{p.name}' is active{why} but has no value in the given "
                    f"params; rebuild the config from the search space the trial ran with "
                    f"(space '{self.name}'), or pass a value for '{p.name}'"
                )
            seen[p.name] = searched[p.name] = params[p.name]
        return {**searched, **constants}

    def random_config(self, seed: int) -> dict[str, object]:
        """One full flat config sampled at random; the same seed gives the same config."""
        import optuna

        old = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            trial = study.ask()
        finally:
            optuna.logging.set_verbosity(old)
        constants = self.define_by_run(trial)
        return {**trial.params, **constants}

    # -- people ----------------------------------------------------------------------

    def describe(self) -> list[str]:
        """One line per entry, e.g. ``cnn.filters_3  int 16..128 (log)  when cnn.depth >= 3``."""
        if not self.entries:
            return []
        width = max(len(p.name) for p in self.entries)
        return [f"{p.name.ljust(width)}  {p.describe()}" for p in self.entries]


# ---------------------------------------------------------------------------- loading


def _find_builtin_dir() -> Path:
    checkout = Path(__file__).resolve().parent.parent / "search_spaces"
    if checkout.is_dir() and any(checkout.glob("*.y*ml")):
        return checkout
    try:
        from importlib.resources import files

        return Path(str(files("digitsearch.search_spaces")))
    except (ImportError, ModuleNotFoundError, TypeError):
        return checkout


#: The folder holding the built-in search space files (``<name>.yaml``).
BUILTIN_DIR: Path = _find_builtin_dir()


def _builtin_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    if BUILTIN_DIR.is_dir():
        for f in sorted(BUILTIN_DIR.iterdir()):
            if f.suffix in _YAML_SUFFIXES and f.is_file() and not f.name.startswith("."):
                out.setdefault(f.stem, f)
    return out


def list_spaces() -> dict[str, str]:
    """Built-in space name -> its one-line description, sorted by name."""
    return {name: load(name).description for name in _builtin_files()}


def load(name_or_path: str | Path) -> SearchSpace:
    """Load a built-in space by name (``"cnn"``) or a YAML file by path."""
    text = str(name_or_path)
    builtins = _builtin_files()
    if not isinstance(name_or_path, Path) and text in builtins:
        return _load_file(builtins[text], name=text, shown=builtins[text])
    path = Path(text).expanduser()
    looks_like_path = (
        isinstance(name_or_path, Path)
        or path.suffix.lower() in _YAML_SUFFIXES
        or "/" in text
        or "\\" in text
        or path.exists()
    )
    if not looks_like_path:
        known = ", ".join(builtins) or "(none found)"
        raise UserError(
            f"unknown search space '{text}': built-in spaces are {known}; "
            f"or give a path to a YAML file (e.g. ./my_space.yaml)"
        )
    if not path.exists():
        hint = ""
        if path.stem in builtins and path.parent == Path("."):
            hint = f", or use the built-in space by its bare name '{path.stem}'"
        raise UserError(f"{text}: search space file not found; check the path{hint}")
    if not path.is_file():
        raise UserError(f"{text}: not a file; give the path of a search space YAML file")
    return _load_file(path, name=path.stem, shown=text)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            dup = key in seen
            seen.add(key)
        except TypeError:
            continue
        if dup:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _param_lines(text: str) -> dict[str, int]:
    """Line number (1-based) of each key under ``params:``, for nicer messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    for k, v in root.value:
        if isinstance(k, yaml.ScalarNode) and k.value == "params" and isinstance(v, yaml.MappingNode):
            return {
                str(pk.value): pk.start_mark.line + 1 for pk, _ in v.value if isinstance(pk, yaml.ScalarNode)
            }
    return {}


def _load_file(path: Path, *, name: str, shown: str | Path) -> SearchSpace:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{shown}: not a UTF-8 text file; give a search space YAML file") from None
    except OSError as e:
        raise UserError(f"{shown}: cannot read the file ({_one_line(e.strerror or e)}); check the path and permissions") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = _one_line(getattr(e, "problem", None) or str(e))
        fix = "keep only one of them" if problem.startswith("duplicate key") else "fix the syntax there"
        raise UserError(f"{shown}: not valid YAML{where}: {problem}; {fix}") from None
    return _Parser(shown, _param_lines(text)).space(data, name=name, path=path.resolve())


class _Parser:
    def __init__(self, shown: str | Path, lines: Mapping[str, int]):
        self.shown = str(shown)
        self.lines = lines

    # -- errors ----------------------------------------------------------------------

    def fail(self, message: str) -> UserError:
        return UserError(_one_line(f"{self.shown}: {message}"))

    def pfail(self, name: str, message: str) -> UserError:
        line = self.lines.get(name)
        where = f"{self.shown}:{line}" if line else self.shown
        return UserError(_one_line(f"{where}: parameter '{name}': {message}"))

    # -- top level -------------------------------------------------------------------

    def space(self, data: object, *, name: str, path: Path) -> SearchSpace:
        if data is None:
            raise self.fail("the file is empty; write a mapping with 'family:' and 'params:' (see search_spaces/README.md)")
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
        family = data.get("family")
        if family is None:
            raise self.fail("missing 'family'; add e.g. 'family: cnn' (the model family the space is for)")
        if not isinstance(family, str) or not family.strip():
            raise self.fail(f"'family' must be a model name such as cnn, not {_show(family)!r}")
        description = data.get("description", "")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise self.fail("'description' must be one line of text; quote it if it looks like a number")
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

        entries: list[Param] = []
        declared: dict[str, Param] = {}
        names = [str(k) for k in raw]
        for key, spec in raw.items():
            pname = self.check_name(key)
            p = self.param(pname, spec, declared, names)
            entries.append(p)
            declared[pname] = p

        params = tuple(p for p in entries if p.kind != CONSTANT)
        constants = {p.name: p.value for p in entries if p.kind == CONSTANT}
        return SearchSpace(
            name=name,
            family=family.strip(),
            description=_one_line(description),
            path=path,
            params=params,
            constants=constants,
            entries=tuple(entries),
        )

    def check_name(self, key: object) -> str:
        if not isinstance(key, str):
            raise self.fail(
                f"parameter name {_show(key)} is not a string; quote it or use a name made of "
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
                f"unknown type '{_show(kind)}'; the known types are {', '.join(KINDS)} "
                "(a plain value is a constant)",
            )
        allowed = _ALLOWED_KEYS[kind]
        for k in spec:
            if k not in allowed:
                raise self.pfail(
                    name, f"unknown key '{_show(k)}' for type {kind}; the allowed keys are {', '.join(allowed)}"
                )

        when = None
        if "when" in spec:
            when = self.condition(name, spec["when"], declared, names)

        if kind == CONSTANT:
            if "value" not in spec:
                raise self.pfail(name, "a constant needs 'value'; write '{type: constant, value: ...}' or a plain value")
            return Param(name=name, kind=CONSTANT, value=spec["value"], when=when)
        if kind == "choice":
            return Param(name=name, kind=kind, values=self.choices(name, spec), when=when)

        for bound in ("low", "high"):
            if bound not in spec or spec[bound] is None:
                raise self.pfail(name, f"type {kind} needs '{bound}'; add e.g. 'low: 0.0, high: 1.0'")
        if kind == "int":
            return self.int_param(name, spec, when)
        low = self.number(name, "low", spec["low"])
        high = self.number(name, "high", spec["high"])
        if low > high:
            raise self.pfail(name, f"low ({_show(low)}) is greater than high ({_show(high)}); swap them")
        if low == high:
            raise self.pfail(
                name,
                f"low and high are both {_show(low)}, so there is nothing to search; "
                f"use a constant instead ('{name}: {_show(low)}')",
            )
        if kind == "loguniform":
            if low <= 0:
                raise self.pfail(
                    name, f"loguniform needs low > 0 (got {_show(low)}); raise low, or use type uniform"
                )
            return Param(name=name, kind=kind, low=low, high=high, log=True, when=when)
        step = None
        if spec.get("step") is not None:
            step = self.number(name, "step", spec["step"])
            if step <= 0:
                raise self.pfail(name, f"step must be > 0 (got {_show(step)}); use a positive step or drop it")
            ratio = (high - low) / step
            if abs(ratio - round(ratio)) > 1e-6:
                raise self.pfail(
                    name,
                    f"high - low ({_show(high - low)}) is not a multiple of step ({_show(step)}); "
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
            raise self.pfail(name, f"'log' must be true or false, not {_show(log)}")
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
        if _is_number(raw):
            value = float(raw)  # type: ignore[arg-type]
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())  # PyYAML reads 1e-4 (no dot) as a string
            except ValueError:
                raise self.pfail(name, f"{key} must be a number, not '{raw}'; write e.g. 1.0e-4") from None
        else:
            raise self.pfail(name, f"{key} must be a number, not {_show(raw)}; write e.g. 1.0e-4")
        if not math.isfinite(value):
            raise self.pfail(name, f"{key} must be a finite number, not {_show(raw)}")
        return value

    def integer(self, name: str, key: str, raw: object) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        value = self.number(name, key, raw)
        if not value.is_integer():
            raise self.pfail(name, f"{key} must be a whole number for type int, not {_show(raw)}; use type uniform for floats")
        return int(value)

    def choices(self, name: str, spec: dict) -> tuple:
        if "values" not in spec or spec["values"] is None:
            raise self.pfail(name, "type choice needs 'values'; add e.g. 'values: [3, 5]'")
        values = spec["values"]
        if not isinstance(values, list):
            raise self.pfail(name, f"'values' must be a list such as [3, 5], not {_show(values)}")
        if not values:
            raise self.pfail(name, "'values' is empty; list at least one value, or use a constant")
        seen: list[object] = []
        for v in values:
            if not isinstance(v, _SCALAR_TYPES):
                raise self.pfail(
                    name, f"choice values must be scalars (text, numbers, true/false, null), not {_show(v)}"
                )
            if any(_same(v, s) and type(v) is type(s) for s in seen):
                raise self.pfail(name, f"value {_show(v)} is listed twice in 'values'; remove the duplicate")
            seen.append(v)
        return tuple(values)

    # -- conditions ------------------------------------------------------------------

    def condition(self, name: str, raw: object, declared: Mapping[str, Param], names: list[str]) -> Condition:
        if not isinstance(raw, str):
            raise self.pfail(name, f"'when' must be a quoted condition such as \"cnn.depth >= 3\", not {_show(raw)}")
        text = _one_line(raw)
        m = _IN_RE.match(text)
        if m:
            ref, op, vtext = m.group("name"), "in", m.group("value")
        else:
            m = _CMP_RE.match(text)
            if not m:
                raise self.pfail(
                    name,
                    f"cannot parse condition '{text}'; write 'NAME OP VALUE' with OP one of "
                    f"{' '.join(_OPS)}, e.g. \"cnn.depth >= 3\"",
                )
            ref, op, vtext = m.group("name"), m.group("op"), m.group("value")

        if ref == name:
            raise self.pfail(name, f"condition '{text}' refers to the parameter itself; refer to one declared above")
        if ref not in declared:
            if ref in names:
                raise self.pfail(
                    name,
                    f"condition '{text}' refers to '{ref}', which is declared later; move '{ref}' above '{name}'",
                )
            raise self.pfail(
                name, f"condition '{text}' refers to unknown parameter '{ref}'; declare '{ref}' above '{name}' or fix the name"
            )

        try:
            value = yaml.safe_load(vtext)
        except yaml.YAMLError:
            raise self.pfail(name, f"cannot parse the value in condition '{text}'; write a plain value or a list like [a, b]") from None

        target = declared[ref]
        if op == "in":
            if not isinstance(value, list) or not value:
                raise self.pfail(name, f"condition '{text}': 'in' needs a non-empty list such as [max, avg]; use == for one value")
            items = value
            value = tuple(value)
        else:
            if isinstance(value, (list, dict)):
                raise self.pfail(name, f"condition '{text}': {op} needs a single value; use 'in' for a list")
            items = [value]
        for v in items:
            if not isinstance(v, _SCALAR_TYPES):
                raise self.pfail(name, f"condition '{text}': values must be scalars, not {_show(v)}")

        if op in _ORDER_OPS:
            if not _is_number(value):
                raise self.pfail(name, f"condition '{text}': {op} needs a number; use == or 'in' for other values")
            numeric = target.kind in ("uniform", "loguniform", "int") or (
                target.kind == "choice" and all(_is_number(v) for v in target.values)
            ) or (target.kind == CONSTANT and _is_number(target.value))
            if not numeric:
                raise self.pfail(name, f"condition '{text}': '{ref}' is not numeric, so {op} never holds; use == or 'in'")
        elif target.kind == "choice":
            for v in items:
                if not any(_same(v, c) for c in target.values):
                    raise self.pfail(
                        name,
                        f"condition '{text}': {_show(v)} is not one of the values of '{ref}' "
                        f"({_show(list(target.values))}); fix the value",
                    )
        return Condition(name=ref, op=op, value=value, text=f"{ref} {op} {vtext}")
