"""Local steps from the best trial: half the sampled trials change one or two of its values.

Why: on MNIST-10k and Fashion-MNIST every time-limited search so far was won by the space's
own starting point 1 (results/README.md). TPE, over a space of 25 parameters and 30-50
trials that ASHA mostly stops after one epoch, rarely lands next to it: the configs that ran
every epoch were all a few values away from it, sampled by luck. Regularized evolution
(Real et al. 2019) and SMAC's local search do what is missing: take the best config so far
and change a little of it. Here, once a trial has run all its epochs, every other sampled
trial is such a step:

  - its parent is the best COMPLETE trial of the study (ties broken at random); PRUNED ones
    (stopped by ASHA or the time limit) measured fewer epochs and are not parents. In a
    multi-objective study (--objective accuracy,latency) there is no one best: the parent is a
    trial of the study's Pareto front, at random, so that steps explore along the whole trade;
  - one or two of the parent's searched values change: a categorical to another of its
    choices, an integer by one step, a float by a random factor (log scale) or a random
    fraction of its range; a value the change makes active (a deeper net's new block) is
    left to TPE;
  - every other value is the parent's.

ASHA judges a step against its parent first (search/schedulers.py): a step ASHA would stop
at a rung goes on while its val_acc is within KEEP_UP of its parent's at the same epoch. The
parent is usually a starting point whose warmup and augmentation make its first epochs slow
(0.94 after one epoch of MNIST-10k, where random configs reach 0.98): by ASHA's rule alone
every step of it that kept its schedule was stopped after one epoch.

A step is a sampled config like any other (not a starting point); the leaderboard's origin
says "step from start 1 (lr)" (steps_in, store/leaderboard.step_origins). Its trial's user
attributes name the parent (`step_from`, the parent's Tune trial id) and what changed
(`step_changes`), which optuna-dashboard shows. Enqueued trials (the starting
points, an orphan's re-run) are never steps. Every choice is drawn from a generator seeded by
(seed, trial number), and stored on the trial before its first suggestion, so a resumed
driver that asks again gets the same step.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

STEP_SHARE = 0.5  # of the sampled trials once a parent exists; the rest explore with TPE
MAX_CHANGES = 2  # values a step changes: 1 or 2
LOG_FACTOR_SIGMA = 0.5  # a log-scale float is multiplied by exp(N(0, sigma)): about x0.6-x1.6
LINEAR_SIGMA = 0.15  # a linear float moves by N(0, sigma * its range)
KEEP_UP = 0.01  # a step ASHA would stop goes on while its val_acc is within this of its parent's at the epoch
TUNE_TRIAL_ATTR = "tune_trial_id"  # user attr: the Tune trial (leaderboard trial_id) a study trial is (reconcile.py)
PARENT_ATTR = "step_from"  # user attr: the parent's Tune trial id (or its study number)
CHANGES_ATTR = "step_changes"  # user attr: the names of the values the step changed
_PLAN_ATTR = "digitsearch:step"  # system attr: {"parent": number, "changed": {name: value}}


class LocalStepSampler(BaseSampler):
    """`base` (TPE), with every other sampled trial a local step from the best complete trial."""

    def __init__(self, base: BaseSampler, seed: int | None = None, share: float = STEP_SHARE):
        self.base, self.seed, self.share = base, seed, share

    # --- the step, planned once per trial ---
    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        if _PLAN_ATTR in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        plan = self._plan(study, trial.number)
        if plan is None:
            return
        parent, changed = plan
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, _PLAN_ATTR, {"parent": parent.number, "changed": changed})
        storage.set_trial_user_attr(trial._trial_id, PARENT_ATTR,
                                    str(parent.user_attrs.get(TUNE_TRIAL_ATTR, parent.number)))
        storage.set_trial_user_attr(trial._trial_id, CHANGES_ATTR, sorted(changed))

    def _plan(self, study: optuna.Study, number: int) -> tuple[FrozenTrial, dict] | None:
        rng = np.random.default_rng([self.seed or 0, number])
        if rng.random() >= self.share:
            return None
        if len(study.directions) > 1:
            parent = on_the_front(study, rng)
        else:
            parent = best_complete(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), rng)
        if parent is None:
            return None
        changed = mutate(parent, rng)
        return (parent, changed) if changed else None

    def _planned(self, study: optuna.Study, trial: FrozenTrial) -> tuple[dict, dict] | None:
        """The parent's params and the changed values of a step trial; None for other trials.
        Read from the storage: the trial Optuna hands a sampler was frozen before before_trial."""
        storage = study._storage
        plan = storage.get_trial_system_attrs(trial._trial_id).get(_PLAN_ATTR)
        if not plan:
            return None
        parent = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, plan["parent"]))
        return parent.params, plan["changed"]

    # --- suggestions: the parent's value, a changed one, or the base sampler's ---
    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        sampled = self.base.sample_relative(study, trial, search_space)
        planned = self._planned(study, trial)
        if planned is None:
            return sampled
        for name, dist in search_space.items():
            value = _stepped(name, dist, *planned)
            if value is not _NONE:
                sampled[name] = value
        return sampled

    def sample_independent(self, study, trial, param_name, param_distribution):
        planned = self._planned(study, trial)
        if planned is not None:
            value = _stepped(param_name, param_distribution, *planned)
            if value is not _NONE:
                return value
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


_NONE = object()  # no step value for this parameter: the base sampler decides


def _stepped(name: str, dist: BaseDistribution, parent: dict, changed: dict):
    """A step trial's value of `name`: the changed one, else the parent's where `dist` still
    holds it, else none (a value the step made active, or whose range the space changed)."""
    value = changed[name] if name in changed else parent.get(name, _NONE)
    if value is _NONE or not _holds(dist, value):
        return _NONE
    return value


def _holds(dist: BaseDistribution, value) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def best_complete(trials: Sequence[FrozenTrial], rng: np.random.Generator) -> FrozenTrial | None:
    """The complete trial with the highest value (> 0: an unusable trial's 0 measured nothing);
    among equals one at random, so that tied parents all get steps."""
    scored = [t for t in trials if t.value is not None and t.value > 0]
    if not scored:
        return None
    top = max(t.value for t in scored)
    tied = sorted((t for t in scored if t.value == top), key=lambda t: t.number)
    return tied[int(rng.integers(len(tied)))]


def on_the_front(study: optuna.Study, rng: np.random.Generator) -> FrozenTrial | None:
    """A multi-objective study's parent: one of its Pareto-optimal feasible COMPLETE trials
    (Optuna's best_trials) that measured an accuracy (the first objective) above zero."""
    front = sorted((t for t in study.best_trials if t.values and t.values[0] > 0), key=lambda t: t.number)
    return front[int(rng.integers(len(front)))] if front else None


def mutate(parent: FrozenTrial, rng: np.random.Generator) -> dict:
    """One or two of the parent's values, each changed (never to the value it had)."""
    movable = [name for name, dist in sorted(parent.distributions.items()) if _can_move(dist)]
    if not movable:
        return {}
    count = min(len(movable), int(rng.integers(1, MAX_CHANGES + 1)))
    picked = rng.choice(len(movable), size=count, replace=False)
    return {movable[i]: moved(parent.distributions[movable[i]], parent.params[movable[i]], rng) for i in picked}


def _can_move(dist: BaseDistribution) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices) > 1
    return dist.high > dist.low


def moved(dist: BaseDistribution, value, rng: np.random.Generator):
    """`value` changed within `dist`: another choice, the next integer, a nearby float."""
    if isinstance(dist, CategoricalDistribution):
        others = [c for c in dist.choices if c != value]
        return others[int(rng.integers(len(others)))]
    if isinstance(dist, IntDistribution):
        step = dist.step if not dist.log else 1
        up = value + step <= dist.high and (value - step < dist.low or rng.random() < 0.5)
        return int(value + step if up else value - step)
    assert isinstance(dist, FloatDistribution)
    if dist.log:
        new = value * math.exp(rng.normal(0.0, LOG_FACTOR_SIGMA))
    else:
        new = value + rng.normal(0.0, LINEAR_SIGMA * (dist.high - dist.low))
    new = min(max(new, dist.low), dist.high)
    if dist.step is not None:
        new = dist.low + round((new - dist.low) / dist.step) * dist.step
    return float(new)


def steps_in(study: optuna.Study) -> dict[str, tuple[str, list[str]]]:
    """Tune trial id -> (its parent's Tune trial id, the names it changed) for each step trial
    of `study` (the leaderboard's origin column says "step from ...")."""
    steps = [t.user_attrs for t in study.get_trials(deepcopy=False)]
    return {str(a[TUNE_TRIAL_ATTR]): (str(a[PARENT_ATTR]), list(a.get(CHANGES_ATTR, [])))
            for a in steps if PARENT_ATTR in a and TUNE_TRIAL_ATTR in a}


# Tune trial id -> its parent's, for the steps this driver process has asked for or restored:
# the searcher (search/reconcile.py) writes it, the scheduler (search/schedulers.py) reads it.
# Both run in the driver; a dict here spares Tune's trial config a key that is not a parameter.
_PARENTS: dict[str, str] = {}


def note_parents(parents: dict[str, str]) -> None:
    _PARENTS.update(parents)


def parent_of(trial_id: str) -> str | None:
    return _PARENTS.get(trial_id)
