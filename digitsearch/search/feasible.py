"""Whether a config can be a trial at all: its net builds, and fits the parameter/MFLOP budget.

One check, two places:
  - the trainable (search/trainable.py) checks the net it is about to train, and records a
    config that fails as an unusable trial ("infeasible: ..." or "over budget: ..."), as it
    always has: a starting point, an orphan re-run, or the last of a searcher's draws;
  - the searcher (search/reconcile.py) checks each config it samples before it becomes a Tune
    trial, with a `Probe`: the net built on the CPU for the data's shapes and classes, its
    parameters and MFLOPs counted as the trainable counts them. A config that fails costs no
    trial number: the study is told it (COMPLETE 0, infeasible by its UNUSABLE constraint, so
    that TPE learns the region, and SKIPPED_ATTR with the note the trainable would have written)
    and the searcher draws again. `skipped_summary` is the run log's line about them.

The latency budget (--max-latency-ms) is not checked here: it needs the net timed, which the
trainable does once before its first epoch.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from digitsearch import models
from digitsearch.core import tasks
from digitsearch.core.build import build_model
from digitsearch.core.config import TrialConfig
from digitsearch.data.bundle import Bundle, Split
from digitsearch.errors import UserError

INFEASIBLE = "infeasible"  # the net cannot be built (a map pooled to nothing, weights this machine cannot get)
OVER_BUDGET = "over budget"  # the net is larger than --max-params or --max-mflops allow
# what a config that cannot be built raises: a property of the config (or of the weights it
# asks for), recorded as infeasible, never retried
BUILD_ERRORS = (models.InvalidArchitecture, UserError)
SKIPPED_ATTR = "skipped"  # study user attr of a config skipped before training: its note ("over budget: ...")


@dataclass(frozen=True)
class Budget:
    """--max-params and --max-mflops; in a space across families, a family's own limits where
    its space sets them (SearchRequest.family_limits)."""

    max_params: int
    max_mflops: float
    by_family: dict = field(default_factory=dict, compare=False)

    def of_family(self, family: str) -> Budget:
        """The budget a trial of `family` is held to."""
        own = self.by_family.get(family)
        if own:
            return Budget(int(own["max_params"]), float(own["max_mflops"]))
        return Budget(self.max_params, self.max_mflops)

    def exceeded(self, params: int, mflops: float) -> str | None:
        """Why a net of `params` parameters and `mflops` MFLOPs per image is over budget (the
        note's text after "over budget: "), or None when it is within both limits."""
        if params <= self.max_params and mflops <= self.max_mflops:
            return None
        limits = f"limits --max-params {self.max_params:,}, --max-mflops {self.max_mflops:g}"
        return f"{params:,} parameters, {mflops:.0f} MFLOPs per image ({limits})"


def size_of(model, example) -> tuple[int, float]:
    """(trainable parameters, forward MFLOPs of one `example`) of `model` as built: fp32, on the CPU."""
    return models.count_params(model), models.forward_mflops(model, example.cpu())


class Skip(NamedTuple):
    """Why a config cannot be a trial: `kind` INFEASIBLE or OVER_BUDGET, the detail, and the
    net's size where it was built (an infeasible one has none)."""

    kind: str
    reason: str
    params: int | None = None
    mflops: float | None = None

    @property
    def note(self) -> str:
        # the trainable's note for the same config (trainable._report_unusable)
        return f"{self.kind}: {self.reason}"


@dataclass(frozen=True)
class Probe:
    """What the driver needs to build a config's net as a trial would: the family, the data's
    shapes and classes (a bundle of one training and one validation example, so that the
    searcher Tune snapshots every second stays small), the normalisation and the budget."""

    family: str
    data: Bundle
    mean: float
    std: float
    budget: Budget

    @classmethod
    def of(cls, family: str, bundle: Bundle, budget: Budget) -> Probe:
        mean, std = bundle.normalisation()
        one = replace(bundle, train=_first(bundle.train), val=_first(bundle.val), test=None, notes=[])
        return cls(family, one, mean, std, budget)

    def skip(self, config: dict) -> Skip | None:
        """Why `config` (a flat config as Tune hands it to the trainable) cannot be a trial, or
        None when it can, or when the probe cannot tell: a config that fails in any other way
        goes to Tune, whose trial records the error as it always has."""
        try:
            cfg = TrialConfig.from_flat(_architecture_only(config), self.family)
        except Exception:  # noqa: BLE001 - the trial fails the same way before it builds a net: Tune records it
            return None
        try:
            model = build_model(cfg, self.data, self.mean, self.std)
        except BUILD_ERRORS as err:
            return Skip(INFEASIBLE, str(err))
        except Exception:  # noqa: BLE001 - the trial, not the driver, reports a failure the probe did not expect
            return None
        example = tasks.for_bundle(self.data).inputs(self.data.train.images, self.mean, self.std, "cpu")
        params, mflops = size_of(model, example)
        over = self.budget.of_family(cfg.family).exceeded(params, mflops)
        return None if over is None else Skip(OVER_BUDGET, over, params, mflops)


def trains_within(budget: Budget, bundle: Bundle) -> Callable[[dict], bool]:
    """Whether a full config (with its `family`) builds for `bundle`'s data within `budget`: the
    searcher would skip one that does not before training it (the portfolio's test of a config)."""
    probes: dict[str, Probe] = {}

    def trains(config: dict) -> bool:
        family = config["family"]
        probe = probes.setdefault(family, Probe.of(family, bundle, budget))
        return probe.skip(config) is None
    return trains


def _first(split: Split) -> Split:
    return split.subset([0])  # a copy: the probe pickles one example, not a view of the whole split


def _architecture_only(config: dict) -> dict:
    """Pretrained weights change no shape: the probe builds a transfer net from scratch rather
    than read (or download) ImageNet weights or a checkpoint in the driver for every draw."""
    if str(config.get("transfer.init", "scratch")) == "scratch":
        return config
    return {**config, "transfer.init": "scratch"}


_WHERE_IN_NET = re.compile(r"^(block|stage) \d+: ")  # "block 3: the feature map shrinks to nothing"


def skipped_in(folder: Path) -> str | None:
    """`skipped_summary` of the experiment's study; None when it cannot be read (a folder copied
    without optuna.db)."""
    from digitsearch.store import study

    try:
        return skipped_summary(study.load(folder))
    except (UserError, OSError):
        return None


def skipped_summary(study) -> str | None:
    """The run log's line about the configs the searcher skipped before training, e.g.
    "skipped 12 configs before training: 9 over budget, 3 infeasible (the feature map shrinks
    to nothing)"; None when it skipped none."""
    notes = [t.user_attrs[SKIPPED_ATTR] for t in study.get_trials(deepcopy=False) if SKIPPED_ATTR in t.user_attrs]
    if not notes:
        return None
    kinds = Counter(note.split(":")[0] for note in notes)
    why = {note.split(": ", 1)[-1] for note in notes if note.startswith(INFEASIBLE)}
    parts = [f"{kinds[OVER_BUDGET]} {OVER_BUDGET}"] if kinds[OVER_BUDGET] else []
    if kinds[INFEASIBLE]:
        reasons = sorted({_WHERE_IN_NET.sub("", reason) for reason in why})
        parts.append(f"{kinds[INFEASIBLE]} {INFEASIBLE} ({'; '.join(reasons)})")
    return f"skipped {len(notes)} config{'s' if len(notes) != 1 else ''} before training: {', '.join(parts)}"
