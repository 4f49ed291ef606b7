"""The loaded form of a search space: :class:`Condition`, :class:`Param`, :class:`SearchSpace`."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from digitsearch.errors import UserError
from digitsearch.spaces._util import is_number, same, show

#: Distribution types a searched parameter may use, in the order shown in messages.
KINDS: tuple[str, ...] = ("uniform", "loguniform", "int", "choice")
#: The kind given to constants (``Param.kind``); in YAML a constant is a plain value
#: or a mapping ``{value: ..., when: ...}`` (``type: constant`` is optional there).
CONSTANT = "constant"
# SearchSpace.family of a space across families (all.yaml): each trial's config names its own
MIXED = "mixed"


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
            return same(actual, self.value)
        if self.op == "!=":
            return not same(actual, self.value)
        if self.op == "in":
            return any(same(actual, v) for v in self.value)  # type: ignore[union-attr]
        if not (is_number(actual) and is_number(self.value)):
            return False
        if self.op == ">=":
            return actual >= self.value  # type: ignore[operator]
        if self.op == "<=":
            return actual <= self.value  # type: ignore[operator]
        if self.op == ">":
            return actual > self.value  # type: ignore[operator]
        return actual < self.value  # type: ignore[operator]

    def __str__(self) -> str:
        return self.text or f"{self.name} {self.op} {show(self.value)}"


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
    #: where it is declared, "search_spaces/cnn.yaml:21" (for messages; "" when built by hand)
    where: str = field(default="", compare=False)

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
            text = f"= {show(self.value)}"
        elif self.kind == "choice":
            text = f"choice {show(list(self.values))}"
        else:
            text = f"{self.kind} {show(self.low)}..{show(self.high)}"
            if self.step is not None:
                text += f" step {show(self.step)}"
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

    ``starting_points`` are the file's ``start:`` points, in file order: partial
    configs (searched parameter name -> value) to evaluate before the sampler explores.
    The loader has checked each value against its parameter, so enqueueing them on an
    Optuna study (:meth:`points_to_evaluate`) makes :meth:`define_by_run` return exactly
    these values for these keys.
    """

    name: str
    family: str
    description: str
    path: Path
    params: tuple[Param, ...]
    constants: dict[str, object] = field(default_factory=dict, hash=False)
    entries: tuple[Param, ...] = ()
    starting_points: tuple[dict[str, object], ...] = field(default=(), hash=False)
    # budget defaults for this space's trials ({"max_mflops": 3000}); the command line wins
    limits: dict[str, float] = field(default_factory=dict, hash=False)
    # a space across families built by `include:`: each included space's own `limits:`, which
    # hold for that family's trials where this space and the command line set none
    family_limits: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.entries:  # built by hand: constants after params, unconditional
            consts = tuple(Param(name=k, kind=CONSTANT, value=v) for k, v in self.constants.items())
            object.__setattr__(self, "entries", tuple(self.params) + consts)
        object.__setattr__(self, "starting_points", tuple(dict(p) for p in self.starting_points))

    @property
    def families(self) -> tuple[str, ...]:
        """The model families trials of this space can use: the `family` parameter's values
        in a space across families, else the one top-level family."""
        if self.family != MIXED:
            return (self.family,)
        entry = next(p for p in self.entries if p.name == "family")
        return tuple(str(v) for v in entry.values) if entry.kind != CONSTANT else (str(entry.value),)

    def _other_families(self, overrides: Mapping[str, object]) -> tuple[str, ...]:
        """The prefixes (`lenet.`, ...) of the families `--set family=F` leaves out: each one's
        parameters are switched on only by its own `family` value (include.py), so never again."""
        if self.family != MIXED or "family" not in overrides:
            return ()
        return tuple(f"{name}." for name in self.families if name != str(overrides["family"]))

    def fixed(self, overrides: Mapping[str, object]) -> "SearchSpace":
        """This space with parameters turned into constants (`tune --set name=value`).

        A fixed parameter keeps its `when:`, so it still appears only where it applies;
        starting points lose the fixed keys. `--set family=F` narrows a space across families
        to F: the other families' parameters and starting points go. A name must exist, so a
        typo is an error, not a silent extra key; a value may leave the searched range (e.g.
        `transfer.init=checkpoint:PATH`): the model checks it when it is built.
        """
        known = {p.name: p for p in self.entries}
        others = self._other_families(overrides)
        entries = [p for p in self.entries if p.name in overrides or not p.name.startswith(others)]
        for name, value in overrides.items():
            if name not in known:
                raise UserError(f"--set {name}: no parameter {name!r} in space {self.name!r}; "
                                f"its parameters: {', '.join(known)}")
            old = known[name]
            entries[entries.index(old)] = Param(name=name, kind=CONSTANT, value=value, when=old.when)
        fixed = set(overrides)
        # a point that picked another family describes that family's net: with `family` fixed
        # it could only run as a random net of the fixed family, so it goes, not just its key
        family = overrides.get("family")
        kept = [p for p in self.starting_points if family is None or p.get("family", family) == family]
        points = tuple({k: v for k, v in point.items() if k not in fixed} for point in kept)
        return dataclasses.replace(
            self, params=tuple(p for p in entries if p.kind != CONSTANT),
            constants={p.name: p.value for p in entries if p.kind == CONSTANT}, entries=tuple(entries),
            starting_points=tuple(p for p in points if p),
        )

    # -- Optuna / Ray ----------------------------------------------------------------

    def _walk(self, pick: Callable[["Param"], object]) -> tuple[dict[str, object], dict[str, object]]:
        """Visit the entries in file order; `pick(param)` gives each active searched value.

        Returns (active searched values, active constants). Order matters: a condition
        sees only what was decided above it, exactly as define-by-run does.
        """
        seen: dict[str, object] = {}
        searched: dict[str, object] = {}
        constants: dict[str, object] = {}
        for p in self.entries:
            if not p.active(seen):
                continue
            if p.kind == CONSTANT:
                seen[p.name] = constants[p.name] = copy.deepcopy(p.value)
            else:
                seen[p.name] = searched[p.name] = pick(p)
        return searched, constants

    def define_by_run(self, trial: Any) -> dict[str, object]:
        """Suggest every active searched parameter on ``trial``; return the active constants.

        Only ``trial.suggest_*`` calls happen here (Ray's ``OptunaSearch`` forbids other
        work); the returned dict is what Ray merges into the trial's config.
        """
        return self._walk(lambda p: p.suggest(trial))[1]

    def points_to_evaluate(self) -> list[dict[str, object]]:
        """Fresh copies of :attr:`starting_points` as a list: Ray ``OptunaSearch(points_to_evaluate=...)``."""
        return [dict(p) for p in self.starting_points]

    def config_from_params(self, params: Mapping[str, object]) -> dict[str, object]:
        """The flat config a trial with searched values ``params`` gets.

        ``{**active searched params, **active constants}``; keys of ``params`` that are
        not active here are ignored.  A missing active parameter is a UserError.
        """

        def given(p: "Param") -> object:
            if p.name not in params:
                why = f" (its condition '{p.when}' holds)" if p.when is not None else ""
                raise UserError(
                    f"{self.path}: parameter '{p.name}' is active{why} but has no value in the given "
                    f"params; rebuild the config from the search space the trial ran with "
                    f"(space '{self.name}'), or pass a value for '{p.name}'"
                )
            return params[p.name]

        searched, constants = self._walk(given)
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

    def fingerprint(self) -> str:
        """sha256 of what the space searches: every entry as `spaces --show` prints it, the
        starting points and the limits (not where they are written, nor the description)."""
        import hashlib
        import json

        what = {"entries": self.describe(), "start": list(self.starting_points), "limits": self.limits}
        if self.family_limits:  # absent from the spaces that include none: their fingerprints stay as they were
            what["family_limits"] = self.family_limits
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=repr).encode()).hexdigest()

    # -- people ----------------------------------------------------------------------

    def describe(self) -> list[str]:
        """One line per entry, e.g. ``cnn.filters_3  int 16..128 (log)  when cnn.depth >= 3``."""
        if not self.entries:
            return []
        width = max(len(p.name) for p in self.entries)
        return [f"{p.name.ljust(width)}  {p.describe()}" for p in self.entries]
