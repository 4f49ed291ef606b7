"""The portfolio: configs learned from real searches (`digitsearch portfolio build`), which a
search evaluates first, in priority order, before its space's own starting points.

A portfolio file (search_spaces/portfolio/portfolio.yaml ships with the package) lists full
configs, each with its `family`. A space takes the configs of its families, each fitted to
it: values the space cannot take (a parameter it does not search, a value outside its range)
are left to the sampler, and `family` is kept only in a space across families. Then come the
space's own `start:` points, less those an earlier point already covers, so that nothing is
trained twice.

The file's order is greedy for coverage over every dataset of its table, so a config that alone
could train on one of them (the others over budget there) may come first. A search orders the
members that can train on its data (`for_data`) by the same greedy over the datasets where each
of them trained: on 28x28 digits the recipe net comes first, on the 28x84 numbers the one cnn
within budget.

The built-in portfolio seeds the built-in spaces; a space of the user's own takes one only
when `--portfolio FILE` names it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from digitsearch.errors import UserError
from digitsearch.spaces._util import one_line, same
from digitsearch.spaces.folder import BUILTIN_DIR
from digitsearch.spaces.include import usable_points
from digitsearch.spaces.model import MIXED, SearchSpace
from digitsearch.spaces.portfolio_build import Row, greedy

PORTFOLIO_DIR = BUILTIN_DIR / "portfolio"
BUILTIN_PORTFOLIO = PORTFOLIO_DIR / "portfolio.yaml"
BUILTIN, NONE = "builtin", "none"
# left out of a portfolio's configs: a search sets flips on mirror-safe data only (search/preflight.py)
DATA_DECIDED = ("flip",)


@dataclass(frozen=True)
class Portfolio:
    source: str  # "builtin" or the file as given
    configs: tuple[dict, ...]  # full configs with `family`, in the file's order
    # per config: dataset -> the val_acc the table had (None: could not train there); {} where the
    # file does not say (written before the files carried it)
    val_acc: tuple[dict, ...] = ()

    def for_data(self, runs: Callable[[dict], bool] | None = None) -> list[dict]:
        """The configs that can train on the search's data (`runs(config)`; all without it), in
        the order of the greedy for coverage over the table's datasets where every one of them
        trained (the file's order where it lacks the evidence or no dataset has them all)."""
        here = [k for k, config in enumerate(self.configs) if runs is None or runs(config)]
        evidence = [self.val_acc[k] if k < len(self.val_acc) else {} for k in here]
        datasets = sorted(set.intersection(*({d for d, v in e.items() if v is not None} for e in evidence))) \
            if evidence and all(evidence) else []
        if not datasets or len(here) < 2:
            return [self.configs[k] for k in here]
        rows = [Row(f"{k:04d}", d, float(e[d]), 0.0, "", {}) for k, e in zip(here, evidence) for d in datasets]
        return [self.configs[int(config_id)] for config_id, _ in greedy(rows, size=len(here))]


def load(choice: str) -> Portfolio | None:
    """`builtin`, `none` (None) or a portfolio file's path; a bad file is a one-line UserError."""
    check_choice(choice)
    if choice == NONE or (choice == BUILTIN and not BUILTIN_PORTFOLIO.is_file()):  # nothing learned yet
        return None
    path = BUILTIN_PORTFOLIO if choice == BUILTIN else Path(choice).expanduser()
    configs, val_acc = _entries(path, choice)
    return Portfolio(choice, configs, val_acc)


def check_choice(choice: str) -> None:
    """A `--portfolio` that names no file is refused (SearchRequest.check: before Ray starts)."""
    if choice not in (BUILTIN, NONE) and not Path(choice).expanduser().is_file():
        raise UserError(f"--portfolio {choice}: no such file; give a portfolio YAML file "
                        f"(`digitsearch portfolio build` writes one), '{BUILTIN}' or '{NONE}'")


def _entries(path: Path, shown: str) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{shown}: cannot be read as a portfolio YAML file ({one_line(err)})") from None
    entries = raw.get("configs") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{shown}: a portfolio file needs a non-empty 'configs:' list of "
                        "{id: ..., config: {family: ..., ...}} entries")
    configs, val_acc = [], []
    for k, entry in enumerate(entries, start=1):
        config = entry.get("config") if isinstance(entry, dict) else None
        if not isinstance(config, dict) or not isinstance(config.get("family"), str):
            raise UserError(f"{shown}: config {k} needs a 'config:' mapping with its 'family'")
        configs.append(dict(config))
        val_acc.append(_evidence(entry.get("val_acc"), shown, k))
    return tuple(configs), tuple(val_acc)


def _evidence(raw, shown: str, k: int) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(v is None or isinstance(v, (int, float)) for v in raw.values()):
        raise UserError(f"{shown}: config {k}'s 'val_acc:' must map each dataset to an accuracy or null")
    return {str(d): v for d, v in raw.items()}


def applies(choice: str, space: SearchSpace) -> bool:
    """Whether `--portfolio choice` seeds `space`: a named file always, the built-in one the
    built-in spaces only."""
    if choice == NONE:
        return False
    return choice != BUILTIN or space.path.resolve().parent == BUILTIN_DIR.resolve()


def points_for(choice: str, space: SearchSpace, runs: Callable[[dict], bool] | None = None) -> list[dict]:
    """The configs `--portfolio choice` puts first in a search of `space` (before `seeded`): those
    of its families that can train on the search's data (`runs`), in the order for that data."""
    chosen = load(choice)
    if chosen is None or not applies(choice, space):
        return []

    def here(config: dict) -> bool:  # of the space's families, and trains on the data
        return config.get("family") in space.families and (runs is None or runs(config))
    return fitted(chosen.for_data(here), space)[0]


def fitted(configs: list[dict], space: SearchSpace) -> tuple[list[dict], list[str]]:
    """The configs of the space's families as starting points of `space`, and the names of the
    values left out (not searched by the space, or outside its range), for one line."""
    mixed = space.family == MIXED
    constants = {p.name for p in space.entries if p.is_constant}
    points, dropped = [], []
    for config in configs:
        family = config.get("family")
        if family is not None and family not in space.families:
            continue
        values = {k: v for k, v in config.items() if (mixed or k != "family") and k not in DATA_DECIDED}
        clean = usable_points([values], list(space.entries))[0]
        dropped += [k for k in values if k not in clean and k not in constants]
        if clean:
            points.append(clean)
    return points, sorted(set(dropped))


def seeded(space: SearchSpace, first: list[dict]) -> SearchSpace:
    """`space` whose starting points are `first`, then its own not covered by an earlier one."""
    points: list[dict] = []
    for point in [*first, *space.starting_points]:
        if not any(covers(kept, point) for kept in points):
            points.append(dict(point))
    return dataclasses.replace(space, starting_points=tuple(points))


def covers(kept: dict, point: dict) -> bool:
    """Whether `kept` fixes every value `point` fixes, the same way (`flip` aside: the data decide
    it, search/preflight.py)."""
    return all(key in kept and same(kept[key], value) for key, value in point.items() if key not in DATA_DECIDED)
