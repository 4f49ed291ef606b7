"""`tune --warm-start EXPERIMENT`: a new search that starts where an earlier one ended.

- The earlier search's best completed configs (TOP of them, best first) are the new search's
  first starting points: trained in full before anything else, like the space's own, so that
  the new leaderboard holds them for its final pick. On the same data, the other starting
  points (the portfolio's, the space's own) that the earlier search trained to the end are not
  trained again.
- Where the data are the same (the data fingerprints in the two experiment.json match: the
  same images, split and validation set), every complete trial of the earlier study is added
  to the new one (Optuna's add_trial) with its value: TPE models them from its first
  suggestion and the local steps (mutation.py) start from the best of them. On other data the
  earlier values measure something else, so only the configs go first.

Across spaces, what the new space does not search (another family's values, a parameter it
does not have, a value outside its range) is left out, said in one line; an earlier trial
the new space could not have sampled is not added.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.spaces import SearchSpace
from digitsearch.spaces.model import MIXED
from digitsearch.spaces.portfolio import covers, fitted
from digitsearch.store import leaderboard, study, trials
from digitsearch.store.experiments import EXPERIMENT_FILE, read_meta

TOP = 3  # the earlier search's best completed configs that go first
WARM_ATTR = "warm_from"  # user attr of an added trial: "<earlier experiment>/<its trial>"


@dataclass(frozen=True)
class WarmStart:
    folder: Path
    meta: dict
    trained: tuple[dict, ...]  # its completed configs fitted to the new space, best first
    dropped: tuple[str, ...]  # the values the new space does not take

    @property
    def points(self) -> tuple[dict, ...]:
        """The best configs that go first."""
        return self.trained[:TOP]


def find(name_or_path: str, results: Path) -> Path:
    """The earlier experiment: a folder, or a name under --results."""
    for folder in (Path(name_or_path).expanduser(), Path(results) / name_or_path):
        if (folder / EXPERIMENT_FILE).is_file():
            return folder
    raise UserError(f"--warm-start {name_or_path}: no experiment there (neither a folder with {EXPERIMENT_FILE} "
                    f"nor a name under {results}); `digitsearch list` shows the experiments")


def read(name_or_path: str, results: Path, space: SearchSpace) -> WarmStart:
    """The earlier experiment's best completed configs as starting points of `space`."""
    folder = find(name_or_path, results)
    meta = read_meta(folder)
    table = leaderboard.read(folder)
    done = table[table["status"] == "completed"].sort_values("val_acc", ascending=False, kind="stable")
    if done.empty:
        raise UserError(f"--warm-start {name_or_path}: that search completed no trial; nothing to start from")
    configs = trials.configs(folder, list(done["trial_id"]))
    best = [_with_family(configs[t], meta) for t in done["trial_id"] if configs.get(t)]
    points, dropped = fitted(best, space)
    if not points:
        raise UserError(f"--warm-start {name_or_path}: none of its configs is of a family space '{space.name}' "
                        f"searches ({', '.join(space.families)}); warm-start from a search of the same family")
    return WarmStart(folder, meta, tuple(points), tuple(dropped))


def _with_family(config: dict, meta: dict) -> dict:
    return config if "family" in config else {"family": meta.get("family"), **config}


def same_data(warm: WarmStart, fingerprint: str) -> bool:
    return bool(fingerprint) and warm.meta.get("data_fingerprint") == fingerprint


def untried(space: SearchSpace, warm: WarmStart) -> tuple[SearchSpace, int]:
    """On the same data: `space` without the starting points (the portfolio's, its own) that
    the earlier search already trained to the end, and how many went. Its best configs, first,
    stay: the new search's leaderboard holds the candidates its final pick chooses from."""
    first, rest = space.starting_points[:len(warm.points)], space.starting_points[len(warm.points):]
    kept = [p for p in rest if not any(covers(t, p) for t in warm.trained)]
    return dataclasses.replace(space, starting_points=(*first, *kept)), len(rest) - len(kept)


def add_finished_trials(warm: WarmStart, space: SearchSpace, folder: Path, study_name: str,
                        directions: list[str]) -> int:
    """Add the earlier study's complete trials the new space could have sampled to the new
    study (created here, before Tune opens it); how many."""
    import optuna

    old = optuna.load_study(study_name=study.name(warm.folder, warm.meta), storage=study.storage(warm.folder))
    if [d.name.lower() for d in old.directions] != directions:
        return 0  # another objective: its values mean something else
    new = optuna.create_study(study_name=study_name, storage=study.storage(folder), directions=directions,
                              load_if_exists=True)
    added = 0
    for trial in old.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        params = _params_in(space, trial.params, warm.meta.get("family"))
        if params is None:
            continue
        new.add_trial(optuna.trial.create_trial(
            params=params, distributions={name: distribution(space, name) for name in params},
            values=trial.values, intermediate_values=trial.intermediate_values,
            user_attrs={WARM_ATTR: f"{warm.folder.name}/{trial.user_attrs.get('tune_trial_id', trial.number)}"}))
        added += 1
    return added


def _params_in(space: SearchSpace, params: dict, family: str | None) -> dict | None:
    """`params` as the new space would have sampled them, or None where it could not have
    (a value it lacks or holds outside its range)."""
    values = dict(params)
    if space.family == MIXED:
        values.setdefault("family", family)
    elif values.pop("family", family) != space.family:
        return None
    try:
        config = space.config_from_params(values)  # the active parameters, as define-by-run walks them
    except UserError:
        return None  # one the new space asks for has no value
    searched = {p.name for p in space.params}
    out = {name: value for name, value in config.items() if name in searched}
    return out if all(_contains(space, name, value) for name, value in out.items()) else None


def _contains(space: SearchSpace, name: str, value: object) -> bool:
    dist = distribution(space, name)
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def distribution(space: SearchSpace, name: str):
    """The Optuna distribution define_by_run suggests `name` from (spaces.model.Param.suggest)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    p = next(entry for entry in space.entries if entry.name == name)
    if p.kind == "uniform":
        return FloatDistribution(p.low, p.high, step=p.step)
    if p.kind == "loguniform":
        return FloatDistribution(p.low, p.high, log=True)
    if p.kind == "int":
        return IntDistribution(p.low, p.high, step=p.step or 1, log=p.log)
    return CategoricalDistribution(list(p.values))
