"""`include:` — a space across families built from the families' own spaces.

all.yaml says `include: [cnn, lenet, ...]` instead of copying every family's ranges, so each
family's YAML stays the one place its ranges live. Including space `cnn` adds:

- a `family` choice over the included families (first, so everything can depend on it);
- every `cnn.`-prefixed entry of cnn.yaml; entries without a `when:` get `when: family == cnn`,
  the others keep theirs, which is false whenever the parameter they test is absent, so
  the whole branch switches off with the family;
- cnn.yaml's starting points, with `family: cnn`, keeping the training values the including
  space can take (the others are left to the sampler);
- cnn.yaml's `limits:`, for cnn trials only: a family's nets are held to the budget its own
  space sets (the recipe net, 59 MFLOPs, is within cnn's 120 but over the default 40), unless
  the including file or the command line sets one (search/request.resolve_limits).

Training settings (`lr`, `optimizer`, ...) are not included: the including file declares
them once, shared by every family.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

from digitsearch.errors import UserError
from digitsearch.spaces.model import Condition, Param, SearchSpace
from digitsearch.spaces.start import _Bad, _check_value


class Included(NamedTuple):
    entries: list[Param]
    points: list[dict]  # the included starting points, raw
    family_limits: dict[str, dict[str, float]]  # family -> its space's `limits:` (those that set any)


def included(names: object, shown: str, load: Callable[[str], SearchSpace]) -> Included:
    """What `include: names` contributes; `load` finds a space by name (builtin.load, passed
    down by the loader so that this module needs no import of it)."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{shown}: 'include' must be a non-empty list of space names, e.g. [cnn, lenet]")
    spaces = [load(name) for name in names]
    families = [s.family for s in spaces]
    if len(set(families)) != len(families):
        raise UserError(f"{shown}: 'include' names the family of one space twice ({', '.join(families)})")
    entries = [Param(name="family", kind="choice", values=tuple(families))]
    points: list[dict] = []
    for space in spaces:
        prefix = f"{space.family}."
        gate = Condition("family", "==", space.family, text=f"family == {space.family}")
        for p in space.entries:
            if p.name.startswith(prefix):
                entries.append(p if p.when is not None else dataclasses.replace(p, when=gate))
        points += [{"family": space.family, **point} for point in space.starting_points]
    return Included(entries, points, {s.family: dict(s.limits) for s in spaces if s.limits})


def usable_points(points: list[dict], entries: list[Param]) -> list[dict]:
    """Each point without the values the including space cannot take (e.g. a training
    setting it does not search, or one outside its range)."""
    by_name = {p.name: p for p in entries if not p.is_constant}
    kept = []
    for point in points:
        clean = {}
        for name, value in point.items():
            try:
                clean[name] = _check_value(by_name[name], value)
            except (KeyError, _Bad):
                continue
        kept.append(clean)
    return kept
