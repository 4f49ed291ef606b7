"""Learning-rate schedules, stepped once per batch over the steps a run is planned for.

A trial plans for its max epochs (ASHA may stop it earlier, as it does any schedule); a
retrain for its own epochs, so a retrain fitted to a time limit still anneals fully. One
LambdaLR serves every schedule: its state is just the step count, so a trial restarted from
a checkpoint (or an older checkpoint of another schedule class) is put back by position.
"""
from __future__ import annotations

import math

import torch

from digitsearch.core.config import TrainSettings

ONECYCLE_START = 1 / 25  # torch's OneCycleLR div_factor: warm up from lr/25 ...
ONECYCLE_END = 1e-4  # ... and end at lr/10^4 (its final_div_factor over the start)
ONECYCLE_WARMUP = 0.25  # when the settings give no warmup


def lr_factor(s: TrainSettings, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The multiple of s.lr at batch `step` (0-based) of a run of `total_steps` batches."""
    return _factor(s, step, steps_per_epoch, min(step / max(total_steps, 1), 1.0))


def _factor(s: TrainSettings, step: int, steps_per_epoch: int, progress: float) -> float:
    """The multiple of s.lr at batch `step`, `progress` (0-1) of the way through the run."""
    if s.schedule == "step":
        return s.lr_decay ** ((step // steps_per_epoch) // s.decay_every)
    warmup = s.warmup or (ONECYCLE_WARMUP if s.schedule == "onecycle" else 0.0)
    start = ONECYCLE_START if s.schedule == "onecycle" else 0.0
    end = ONECYCLE_END if s.schedule == "onecycle" else 0.0
    if progress < warmup:
        return start + (1 - start) * progress / warmup
    annealed = (progress - warmup) / max(1 - warmup, 1e-12)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * annealed))


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return max(1, math.ceil(examples / batch_size))


def make(optimizer, s: TrainSettings, epochs: int, examples: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of a run of `epochs` epochs over `examples` training examples; call
    .step() after every optimizer step."""
    per_epoch = steps_per_epoch(examples, s.batch_size)
    total = per_epoch * max(epochs, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(s, step, per_epoch, total))


def seek(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Put the schedule at batch `step`, as if it had been stepped that often (a restored trial)."""
    scheduler.last_epoch = step
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def shorten(scheduler: torch.optim.lr_scheduler.LambdaLR, s: TrainSettings, examples: int, planned: int,
            epochs: int) -> None:
    """Make a run planned for `planned` epochs (make's schedule, or one this shortened before)
    end after `epochs` instead: the progress made so far stays, and the rest of the schedule
    (what is left of the warmup, and the anneal) is fitted into the batches left, so a run that
    a time limit cuts short still ends annealed. Step decay has no end to keep: left as is."""
    per_epoch = steps_per_epoch(examples, s.batch_size)
    now, total = scheduler.last_epoch, per_epoch * max(epochs, 1)
    if s.schedule == "step" or total <= now:
        return
    # (from step, progress there, total steps): where the current schedule's progress is counted from
    start, reached, old_total = getattr(scheduler, _PLAN, (0, 0.0, per_epoch * max(planned, 1)))
    progress_now = min(reached + (1 - reached) * (now - start) / max(old_total - start, 1), 1.0)
    setattr(scheduler, _PLAN, (now, progress_now, total))

    def factor(step: int) -> float:
        rest = max(step - now, 0) / (total - now)  # of the batches left
        return _factor(s, step, per_epoch, min(progress_now + (1 - progress_now) * rest, 1.0))

    scheduler.lr_lambdas = [factor] * len(scheduler.lr_lambdas)


_PLAN = "digitsearch_plan"  # set by shorten on the scheduler (plain numbers: its state_dict stays loadable)
