"""Training the members of a retrain on train+val, one after the other, within a time limit if given.

No Ray: the models come from core.build, the loop from core.engine. Under a time limit,
fit_to measures what an epoch of each member costs here and picks the epochs (and how many
members) that fit; the guard then re-plans the later members on the pace the earlier ones had.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from digitsearch import data, models
from digitsearch.core import budget, engine, tasks
from digitsearch.core.build import build_model
from digitsearch.core.timebudget import Deadline
from digitsearch.errors import UserError
from digitsearch.final import check as retrain_check
from digitsearch.final.plan import Member, Plan


@dataclass(frozen=True)
class TrainData:
    """train+val as model inputs, with the normalisation every member shares."""

    tensors: engine.Tensors
    mean: float
    std: float
    task: tasks.ImageTask | tasks.SequenceTask
    device: torch.device


@dataclass
class Trained:
    model: torch.nn.Module
    history: list[dict]
    reseed: int = 0  # the member's seed less the experiment's (its plan's, or a retry's: final.check)
    check: retrain_check.Check | None = None


def training_data(bundle: data.Bundle) -> TrainData:
    task = tasks.for_bundle(bundle)
    device = engine.default_device()
    full = bundle.train_and_val()
    mean, std = full.pixel_stats() if bundle.task == "image" else (0.0, 1.0)
    return TrainData(engine.to_tensors(full.images, full.labels, mean, std, device, task), mean, std, task, device)


def build(member: Member, bundle: data.Bundle, training: TrainData) -> torch.nn.Module:
    try:
        model = build_model(member.cfg, bundle, training.mean, training.std)
    except models.InvalidArchitecture as err:  # only a chosen --trial can be one the search found infeasible
        raise UserError(f"trial {member.trial['trial_id']} cannot be built: {err}") from None
    return engine.prepare_model(model, training.device)


def train_members(job: Plan, bundle: data.Bundle, training: TrainData, guard: budget.Guard | None,
                  note: Callable[[str], None], progress: Callable | None = None,
                  on_start: Callable[[int], None] | None = None,
                  on_member: Callable[[int, int, str], None] | None = None) -> list[Trained]:
    """Each member in turn; under a time limit, only those that still fit (the best always does)."""
    trained = []
    planned = job.planned or len(job.members)
    for k, member in enumerate(job.members):
        if guard and k:
            member, planned = _replanned(member, k, planned, job, guard, note)
            if member is None:
                break
        if on_member:
            on_member(k + 1, planned, member.trial["trial_id"])
        done = train(member, bundle, training, job.meta["seed"] + member.reseed, progress, on_start,
                     _time_hooks(guard, k))
        done.reseed = member.reseed
        if guard:
            guard.trained(k, done.history)
        _say_how_it_ended(member, done.history, note)
        trained.append(_kept_after_check(done, member, job, bundle, training, guard is not None, note, progress,
                                         on_start))
    return trained


def _replanned(member: Member, k: int, planned: int, job: Plan, guard: budget.Guard,
               note: Callable[[str], None]) -> tuple[Member | None, int]:
    """Member k re-planned on the pace the members so far really had, and how many members the
    plan now holds: members the plan left waiting join when the time left gives each of them
    job.waiting_epochs (the calibration read the epochs too slow), and the time left is shared
    by the members planned. None: member k no longer fits."""
    asked = len(job.members)
    grown = next((count for count in range(asked, planned, -1)
                  if guard.epochs_for_rest(k, count) >= job.waiting_epochs), planned)
    if grown > planned:
        joined = ", ".join(str(j + 1) for j in range(planned, grown))
        note(f"note: the members so far trained faster than measured: member{'s' * (grown - planned > 1)} {joined} "
             f"of the {asked} asked fit{'s' * (grown - planned == 1)} after all")
        planned = grown
    if k >= planned:
        return None, planned  # still waiting when the time is up: the plan's line said it was left out
    epochs = guard.epochs_for_rest(k, planned)
    if epochs < max(budget.MIN_EPOCHS, job.waiting_epochs):  # the plan's own bar for a member
        note(f"warning: this machine runs slower than measured; the ensemble keeps {k} of its "
             f"{planned} members to end within --time-limit")
        return None, planned
    if epochs != member.epochs:
        note(f"note: member {k + 1} gets {epochs} epochs instead of the {member.epochs} planned: the members "
             f"so far trained {'faster' if epochs > member.epochs else 'slower'} than measured")
        member = replace(member, epochs=epochs)
    return member, planned


def _kept_after_check(done: Trained, member: Member, job: Plan, bundle: data.Bundle, training: TrainData,
                      time_limited: bool, note: Callable[[str], None], progress, on_start) -> Trained:
    """`done`, checked against the search's val_acc (final.check); when it falls short and no time
    limit binds, the better of it and one more run under another seed."""
    done.check = retrain_check.check(done.model, bundle, training, member.trial.get("val_acc"))
    if done.check is None or not done.check.short or len(done.history) < int(member.trial.get("best_epoch") or 0):
        return done  # kept, or trained fewer epochs (--epochs) than its trial peaked at: nothing was promised for those
    trial = member.trial["trial_id"]
    if time_limited:
        note(f"warning: {done.check.line(trial)}; --time-limit left no time to train it again")
        return done
    note(f"warning: {done.check.line(trial)}; training it once more under another seed")
    reseed = member.reseed + retrain_check.RESEED
    again = train(member, bundle, training, job.meta["seed"] + reseed, progress, on_start)
    again.reseed = reseed
    again.check = retrain_check.check(again.model, bundle, training, member.trial.get("val_acc"))
    kept = again if again.check.seen > done.check.seen else done
    note(f"retrain check: kept the {'second' if kept is again else 'first'} run of trial {trial} "
         f"({kept.check.seen:.4f} on the validation images; the other {min(done, again, key=_seen).check.seen:.4f})")
    return kept


def _seen(trained: Trained) -> float:
    return trained.check.seen


def _time_hooks(guard: budget.Guard | None, k: int) -> dict:
    """engine.fit's time-limit hooks for member k (engine.fit says what each does); none without a limit."""
    if guard is None:
        return {}
    return {"replan": lambda history, planned: guard.epochs_in_all(k, history, planned),
            "stop": lambda epoch, metrics: not guard.another_epoch_fits(k, metrics["epoch_seconds"]),
            "interrupt": lambda: guard.out_of_time_now(k)}


def _say_how_it_ended(member: Member, history: list[dict], note: Callable[[str], None]) -> None:
    if len(history) == member.epochs and not history[-1].get("interrupted"):
        return
    trial = member.trial["trial_id"]
    if history[-1].get("interrupted"):
        how = f"stopped during epoch {len(history)} of {member.epochs}"
    elif history[-1].get("schedule_refitted"):
        how = f"trained {len(history)} of its {member.epochs} epochs, its learning-rate schedule refitted into them"
    else:
        how = f"stopped after {len(history)} of {member.epochs} epochs"
    note(f"warning: this machine runs slower than measured; trial {trial} {how} to end within --time-limit")


def train(member: Member, bundle: data.Bundle, training: TrainData, seed: int, progress: Callable | None = None,
          on_start: Callable[[int], None] | None = None, time_hooks: dict | None = None) -> Trained:
    """Seeded as a lone retrain of this trial is (reseed 0): member k of an ensemble is that same net.
    `time_hooks`: a time limit's keyword arguments for engine.fit (_time_hooks), if any; its `clock`
    too where epochs are timed on another clock than time.perf_counter (a test's simulated epochs)."""
    torch.manual_seed(seed)
    model = build(member, bundle, training)
    if on_start:
        on_start(member.epochs)
    history = engine.fit(model, training.tensors, member.cfg.train, member.epochs, seed=seed, on_epoch=progress,
                         **(time_hooks or {}))
    return Trained(model, history)


def fit_to(deadline: Deadline, job: Plan, bundle: data.Bundle, training: TrainData, views: tuple[str, ...],
           note: Callable[[str], None]) -> tuple[Plan, budget.Guard]:
    """The plan with the epochs (and members) that end the run by `deadline`, measured on this machine,
    and the guard that keeps it there."""
    test_examples = len(bundle.test) if bundle.test is not None else 0
    timed = budget.calibration_seconds(deadline.left())
    measured: dict[str, budget.Cost] = {}  # a reseeded copy costs what its trial's first member did
    for member in job.members:
        if member.trial["trial_id"] not in measured:
            measured[member.trial["trial_id"]] = budget.measure(
                lambda m=member: build(m, bundle, training), training.tensors, member.cfg.train, test_examples,
                len(views), job.meta["seed"], seconds=timed)
    costs = [measured[member.trial["trial_id"]] for member in job.members]
    fixed = budget.after_training(job.exports)
    enough = budget.member_epochs(job.meta["max_epochs"])
    chosen = budget.plan_epochs(costs, deadline.left(), min_epochs=enough, fixed=fixed)
    note(budget.plan_line(chosen, len(job.members), enough))
    members = tuple(replace(m, epochs=chosen.epochs) for m in job.members)  # those past `planned` wait
    return (replace(job, members=members, planned=chosen.members, waiting_epochs=enough),
            budget.Guard(deadline, costs, fixed))
