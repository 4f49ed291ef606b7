"""Every space checked against the schemas before a search starts, so a typo costs one line,
not an hour of trials that all fail the same way.

Two stages. Before the data are loaded: every training entry's range within TrainSettings'
bounds, every unprefixed name a training setting, and every starting point plus a seeded
sample of configs from every family's branch checked for kwargs the family takes, of the
types its signature says. After the data are loaded, before Ray starts: the same configs
parsed into a TrialConfig and built on the `meta` device (no memory, no compute). Only a genuine
property of one architecture (a map pooled to nothing: InvalidArchitecture) is left to the
trial, which records it as infeasible.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

from digitsearch import models
from digitsearch.core.config import TRAIN_KEYS, TrainSettings, TrialConfig, gather_indexed
from digitsearch.errors import UserError
from digitsearch.spaces import MIXED, Param, SearchSpace

SAMPLES_PER_FAMILY = 20


def check_space(space: SearchSpace, overrides: Mapping[str, object] = {}, seed: int = 0) -> list[dict]:
    """The configs checked (the starting points first), or a UserError naming the key, its
    valid values and where it is declared (the YAML line, or the --set)."""
    names = _Names(space, overrides)
    for entry in space.entries:
        _check_entry(entry, space, names)
    configs = sample_configs(space, seed)
    for config in configs:
        _check_config(config, space, names)
    return configs


def sample_configs(space: SearchSpace, seed: int, per_family: int = SAMPLES_PER_FAMILY) -> list[dict]:
    """Every starting point filled in by a seeded random sampler, then `per_family` random
    configs from each family's branch (a space across families samples each family apart)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    fixed = [dict(point) for point in space.starting_points]
    for family in space.families:
        fixed += [{"family": family} if space.family == MIXED else {}] * per_family
    configs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna warns about enqueued values; the parser checked them
        for point in fixed:
            study.enqueue_trial(point, skip_if_exists=False)
            trial = study.ask()
            constants = space.define_by_run(trial)
            configs.append({**trial.params, **constants})
            study.tell(trial, 0.0)
    return configs


def check_builds(space: SearchSpace, configs: list[dict], bundle) -> None:
    """Each config built on the meta device with the data's shapes; a failure other than
    InvalidArchitecture is one line naming the config."""
    import torch

    from digitsearch.core.build import build_model

    mean, std = bundle.normalisation()
    for index, config in enumerate(configs):
        # what preflight fixed for these data (flip off on digits) overrides the early sample
        config = {**config, **{name: value for name, value in space.constants.items() if name in config}}
        cfg = TrialConfig.from_flat(_without_downloads(config), space.family)
        try:
            with torch.device("meta"):
                build_model(cfg, bundle, mean, std)
        except models.InvalidArchitecture:
            continue  # a property of this one net: the trial records it as infeasible
        except UserError as err:
            raise UserError(f"space {space.name!r}: {_which(index, space)} {_show(config)}: {err}") from None
        except Exception as err:  # noqa: BLE001 - any other failure would end every such trial
            raise UserError(f"space {space.name!r}: {_which(index, space)} {_show(config)} does not build: "
                            f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from None


class _Names:
    """Where each name of the space comes from, and which family prefix it carries."""

    def __init__(self, space: SearchSpace, overrides: Mapping[str, object]):
        self.by_name = {p.name: p for p in space.entries}
        self.overrides = dict(overrides)
        self.prefixes = tuple(f"{family}." for family in space.families)

    def where(self, name: str) -> str:
        if name in self.overrides:
            return f"--set {name}={self.overrides[name]}"
        entry = self.by_name.get(name)
        return entry.where if entry is not None and entry.where else "the space"

    def fail(self, name: str, message: str) -> UserError:
        return UserError(f"{self.where(name)}: parameter {name!r}: {message}")


def _check_entry(entry: Param, space: SearchSpace, names: _Names) -> None:
    if entry.name == "family" or entry.name.startswith(names.prefixes):
        return  # model kwargs: checked with the family's signature on whole configs
    if entry.name not in TRAIN_KEYS:
        prefixes = ", ".join(f"{prefix}NAME" for prefix in names.prefixes)
        raise names.fail(entry.name, f"is neither a model parameter ({prefixes}) nor a training setting "
                                     f"({', '.join(TRAIN_KEYS)}); fix the name")
    for value in _values_of(entry):
        try:
            TrainSettings.check_value(entry.name, value)
        except UserError as err:
            raise names.fail(entry.name, str(err).removeprefix(f"training setting {entry.name!r}: ")) from None


def _values_of(entry: Param) -> tuple:
    """What to check of an entry: a range's two ends (the bounds are intervals), every choice."""
    if entry.is_constant:
        return (entry.value,)
    if entry.kind == "choice":
        return tuple(entry.values)
    return (entry.low, entry.high)


def _check_config(config: dict, space: SearchSpace, names: _Names) -> None:
    family = str(config.get("family", space.family))
    prefix = f"{family}."
    model_flat = {key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)}
    kwargs = gather_indexed(model_flat)
    try:
        models.check_kwargs(family, kwargs)
    except models.BadKwarg as err:
        raise names.fail(_key_of(prefix, err.loc, model_flat), str(err)) from None


def _key_of(prefix: str, loc: tuple, model_flat: dict) -> str:
    """The config key behind a kwarg path: ("kernel",) -> cnn.kernel, ("filters", 1) -> cnn.filters_2."""
    name = str(loc[0])
    if len(loc) > 1 and isinstance(loc[1], int) and f"{name}_{loc[1] + 1}" in model_flat:
        return f"{prefix}{name}_{loc[1] + 1}"
    if name in model_flat:
        return prefix + name
    indexed = sorted(key for key in model_flat if key.startswith(f"{name}_"))
    return prefix + (indexed[0] if indexed else name)


def _without_downloads(config: dict) -> dict:
    """Pretrained weights are checked by preflight (cache, checkpoint file); on the meta
    device only the architecture is built, so those inits are built as scratch."""
    if str(config.get("transfer.init", "scratch")) == "scratch":
        return config
    return {**config, "transfer.init": "scratch"}


def _which(index: int, space: SearchSpace) -> str:
    points = len(space.starting_points)
    return f"starting point {index + 1}" if index < points else "a sampled config"


def _show(config: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in config.items()) + "}"
