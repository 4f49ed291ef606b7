"""Driver-side checks before any trial runs, so a bad pairing costs one line, not a search.

Every family a space can pick must exist and serve the dataset's task (seq2seq reads
sequences, the others images). For the transfer family, every `init:` the space can pick
must be usable: `checkpoint:PATH` files must exist (and are made absolute, since trials
may run elsewhere), and ImageNet weights must be in torchvision's cache or downloadable.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from digitsearch import models
from digitsearch.errors import UserError
from digitsearch.spaces import SearchSpace

CHECKPOINT = "checkpoint:"


def check(space: SearchSpace, task: str, dataset: str, echo: Callable[[str], None],
          mirror_safe: bool = False, note: Callable[[str], None] | None = None) -> SearchSpace:
    """The space ready to run (checkpoint paths absolute, flips off where the data forbid
    them), or a UserError. `echo` gets warnings, `note` (default: echo) what was adjusted."""
    for family in space.families:
        models.family(family)
        models.check_serves(family, task, dataset)
    space = _flips_for(space, dataset, mirror_safe, note or echo)
    if "transfer" in space.families:
        space = _absolute_checkpoints(space, "transfer.init")
        _check_transfer(space, echo)
    return space


def _flips_for(space: SearchSpace, dataset: str, mirror_safe: bool, echo: Callable[[str], None]) -> SearchSpace:
    """On data that are not mirror-safe a searched `flip` is fixed to false (the shared
    training block offers it to every image space); a space or --set that insists on
    flip true is refused: the dataset registry, not the space, decides (data.catalog.MIRROR_SAFE)."""
    values = values_of(space, "flip")
    if mirror_safe:
        return _mirrored_points(space) if any(p.name == "flip" for p in space.params) else space
    if True not in values:
        return space
    if False not in values:
        from digitsearch.core.build import flip_refused

        raise UserError(flip_refused(dataset))
    echo(f"data: {dataset} is not mirror-safe: flip fixed to false")
    return space.fixed({"flip": False})


def _mirrored_points(space: SearchSpace) -> SearchSpace:
    """Starting points that leave `flip` out (the cnn recipe net) flip on mirror-safe data, rather
    than have the sampler toss a coin for the net the search is meant to beat."""
    points = tuple(p if "flip" in p else {**p, "flip": True} for p in space.starting_points)
    return dataclasses.replace(space, starting_points=points)


def values_of(space: SearchSpace, name: str) -> tuple:
    """Every value parameter `name` can take in `space` (empty when it is not there)."""
    for p in space.entries:
        if p.name == name:
            return (p.value,) if p.is_constant else tuple(p.values)
    return ()


def _absolute(value):
    if isinstance(value, str) and value.startswith(CHECKPOINT):
        return CHECKPOINT + str(Path(value[len(CHECKPOINT):]).expanduser().resolve())
    return value


def _absolute_checkpoints(space: SearchSpace, name: str) -> SearchSpace:
    entries = []
    for p in space.entries:
        if p.name == name:
            p = dataclasses.replace(p, value=_absolute(p.value)) if p.is_constant else \
                dataclasses.replace(p, values=tuple(_absolute(v) for v in p.values))
        entries.append(p)
    return dataclasses.replace(
        space, entries=tuple(entries), params=tuple(p for p in entries if not p.is_constant),
        constants={p.name: p.value for p in entries if p.is_constant},
    )


def _check_transfer(space: SearchSpace, echo: Callable[[str], None]) -> None:
    from digitsearch.models import transfer

    inits = values_of(space, "transfer.init") or ("scratch",)
    for init in inits:
        transfer.check_init(str(init))
    if "imagenet" not in inits:
        return
    backbones = values_of(space, "transfer.backbone") or ("resnet18",)
    for backbone in backbones:
        try:
            transfer.ensure_imagenet_weights(str(backbone))
        except UserError as err:
            if set(inits) == {"imagenet"}:
                raise
            # the search can still pick scratch/checkpoint; imagenet trials end as infeasible
            echo(f"warning: {err}; trials that pick init imagenet with {backbone} are recorded as infeasible")
