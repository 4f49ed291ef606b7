"""The Ray Tune adapter: build the model, loop epochs, report. Nothing else.

All training is core.engine's plain PyTorch, and the model comes from core.build. The dataset arrives through
`tune.with_parameters` (in the object store once, not shipped with every trial) and
becomes tensors once per trial. Only an epoch that beats the trial's best so far is
checkpointed, so a long search keeps one checkpoint per trial; the checkpoint holds the
optimizer, scheduler and sampler state too, so a trial that Ray restarts (a retried error,
a lost node, `tune --resume`) continues from its best epoch instead of from scratch.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray
import torch
from ray import tune

from digitsearch.core import checkpoint, cost, engine, gpu_memory, schedules, tasks
from digitsearch.core.build import build_model
from digitsearch.core.config import TrialConfig
from digitsearch.data.bundle import Bundle
from digitsearch.search import chance, feasible
from digitsearch.search.callbacks import faults
from digitsearch.search.deadline import TIME_LIMIT_NOTE
from digitsearch.store.leaderboard import match_starting_points

CHECKPOINT_FILE = "model.pt"


@dataclass(frozen=True)
class TrialRuntime:
    """What every trial of one search shares, apart from the data."""

    family: str
    max_epochs: int
    threads: int
    seed: int
    max_params: int
    max_mflops: float
    # a space across families: the families held to their own space's limits (SearchRequest.family_limits)
    family_limits: dict = field(default_factory=dict)
    # --max-latency-ms: a trial whose measured CPU latency per image is above it is over budget
    max_latency_ms: float | None = None
    # wall-clock time (time.time()) the search must end by (--time-limit), else None: a trial
    # does not start an epoch it cannot finish before it, and ends at the boundary instead
    deadline: float | None = None
    # a fault the tests inject (search.callbacks.faults, DIGITSEARCH_TRIAL_FAULT); '' in every real search
    fault: str = ""
    # the space's hand-made nets (partial configs): trained in full, never stopped at chance (search/chance.py)
    starting_points: tuple[dict, ...] = ()
    # whether a sampled config still at chance after its first epoch ends there: not under
    # --scheduler fifo, which asks for every trial to run its max epochs
    stop_at_chance: bool = True

    @property
    def budget(self) -> feasible.Budget:
        return feasible.Budget(self.max_params, self.max_mflops, self.family_limits)


# a trial that never reached the cost measurement reports these as None: Tune checks that every
# result holds the metrics a multi-objective searcher asks for (--objective accuracy,latency)
UNMEASURED = {"latency_ms": None, "images_per_s": None, "model_kb": None}


def _report_unusable(why: str, reason: str, params: int = 0, mflops: float = 0.0, costs: dict = UNMEASURED) -> None:
    # val_acc 0 tells the searcher this region is bad; `note` puts the reason in the leaderboard
    tune.report({"val_acc": 0.0, "best_val_acc": 0.0, "epoch": 0, "params": params, "mflops": mflops,
                 **costs, "note": f"{why}: {reason}"})


def _report_with_checkpoint(model, optimizer, scheduler, generator, metrics: dict) -> None:
    # Ray copies the folder into the experiment's storage during report(); ours is temporary
    with tempfile.TemporaryDirectory(prefix="digitsearch-ckpt-") as folder:
        checkpoint.save(Path(folder) / CHECKPOINT_FILE, model, optimizer, scheduler, generator, metrics)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _restore(model, optimizer, scheduler, generator, steps_per_epoch: int) -> tuple[int, float, int, dict]:
    """(next epoch, best val_acc, best epoch, the saved epoch's metrics): from Ray's checkpoint
    when this trial is a restart, else a fresh start."""
    saved = tune.get_checkpoint()
    if saved is None:
        return 1, -1.0, 0, {}
    with saved.as_directory() as folder:
        state = checkpoint.load(Path(folder) / CHECKPOINT_FILE)
    return (*checkpoint.restore(state, model, optimizer, scheduler, generator, steps_per_epoch), state["metrics"])


def _out_of_time(deadline: float | None, epoch_seconds: float, now: float) -> bool:
    """Whether another epoch as long as the last one, started at `now` (time.time()), would end
    after the deadline."""
    return deadline is not None and now + epoch_seconds > deadline


def _node() -> str:
    # which machine trained the trial: the leaderboard's `node` column (a cluster's node id)
    return ray.get_runtime_context().get_node_id()


def _over_budget(params: int, mflops: float, runtime: TrialRuntime, family: str) -> bool:
    """The budget guard, reported as the trial's end: one such trial would cost as much as many
    ordinary ones. The searcher has already skipped most such configs (search/feasible.py):
    what reaches it is a starting point, an orphan re-run, or the last of a searcher's draws."""
    reason = runtime.budget.of_family(family).exceeded(params, mflops)
    if reason is None:
        return False
    _report_unusable(feasible.OVER_BUDGET, reason, params, mflops)
    return True


def _costs_within_budget(model, example, runtime: TrialRuntime, family: str) -> tuple[int, float, cost.Cost] | None:
    """(parameters, MFLOPs, the measured cost) of the model as built (fp32, on the CPU, before
    training moves it), each measured once per trial; None when the budget guard stopped it."""
    params, mflops = feasible.size_of(model, example)
    if _over_budget(params, mflops, runtime, family):
        return None
    measured = cost.measure(model, example)
    return None if _too_slow(measured, params, mflops, runtime) else (params, mflops, measured)


def _too_slow(measured: cost.Cost, params: int, mflops: float, runtime: TrialRuntime) -> bool:
    """--max-latency-ms, the latency part of the budget guard: known before the first epoch."""
    if runtime.max_latency_ms is None or measured.latency_ms <= runtime.max_latency_ms:
        return False
    reason = (f"{measured.latency_ms:.3g} ms per image on {measured.threads} thread(s) "
              f"(limit --max-latency-ms {runtime.max_latency_ms:g})")
    _report_unusable(feasible.OVER_BUDGET, reason, params, mflops, measured.metrics())
    return True


def train_trial(config: dict, bundle: Bundle, runtime: TrialRuntime) -> None:
    started_at = time.time()  # with each report's ended_at: the bench's gap between a slot's trials
    torch.set_num_threads(runtime.threads)
    torch.manual_seed(runtime.seed)
    cfg = TrialConfig.from_flat(config, runtime.family)
    mean, std = bundle.normalisation()
    try:
        model = build_model(cfg, bundle, mean, std)
    except feasible.BUILD_ERRORS as err:
        # e.g. a feature map pooled to nothing, or ImageNet weights this machine cannot get
        return _report_unusable(feasible.INFEASIBLE, str(err))
    task = tasks.for_bundle(bundle)
    # the guard measures on one CPU example: a refused config never moves data to the device
    example = engine.to_tensors(bundle.train.images[:1], bundle.train.labels[:1], mean, std, "cpu", task).x
    if (within := _costs_within_budget(model, example, runtime, cfg.family)) is None:
        return
    params, mflops, measured = within
    device = engine.device_for(ray.get_gpu_ids(), torch.cuda.is_available())
    if device.type == "cuda":  # a reused actor still caches the previous trial's blocks: free them for the neighbours
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()  # the peak an out-of-memory wait asks room for is this trial's
    train = engine.to_tensors(bundle.train.images, bundle.train.labels, mean, std, device, task)
    val = engine.to_tensors(bundle.val.images, bundle.val.labels, mean, std, device, task)
    model = engine.prepare_model(model, device)
    optimizer = engine.make_optimizer(model, cfg.train)
    # planned over the trial's max epochs: ASHA's rungs compare trials part-way through their schedule
    scheduler = engine.make_scheduler(optimizer, cfg.train, runtime.max_epochs, len(train))
    generator = engine.generator_for(device, runtime.seed)
    start, best_acc, best_epoch, saved = _restore(model, optimizer, scheduler, generator,
                                                  schedules.steps_per_epoch(len(train), cfg.train.batch_size))
    if start > runtime.max_epochs:
        # restored from its last epoch, which a kill had hidden from Tune's snapshot
        # (search.replaced_checkpoints): that epoch's result is the trial's last, said again
        return tune.report(saved)
    fixed = {"params": params, "mflops": mflops, **measured.metrics(), "node": _node(), "started_at": started_at}
    restored = (start, best_acc, best_epoch)
    _train_epochs(model, optimizer, scheduler, generator, train, val, cfg, runtime, fixed, restored,
                  chance_bar=_chance_bar(config, bundle, runtime))


def _chance_bar(config: dict, bundle: Bundle, runtime: TrialRuntime) -> float | None:
    """The accuracy at or below which the trial's first epoch ends it (search/chance.py); None
    where no such rule holds: a sequence task, one of the space's starting points, a FIFO search."""
    if not runtime.stop_at_chance or bundle.task != "image" or \
            match_starting_points({"trial": config}, runtime.starting_points):
        return None
    return chance.bar(bundle.val.labels)


def _train_epochs(model, optimizer, scheduler, generator, train, val, cfg: TrialConfig, runtime: TrialRuntime,
                  fixed: dict, restored: tuple[int, float, int], chance_bar: float | None = None) -> None:
    """The epochs from `restored` (next epoch, best val_acc, best epoch) to --max-epochs, each
    reported; with `chance_bar`, a first epoch that leaves the net at chance is its last."""
    start, best_acc, best_epoch = restored
    out_of_memory = OutOfMemory(train.x.device)
    for epoch in range(start, runtime.max_epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        began = time.time()
        metrics = _run_epoch(model, optimizer, scheduler, generator, train, val, cfg, out_of_memory)
        if isinstance(metrics, str):
            return tune.report({"val_acc": 0.0, "best_val_acc": 0.0, "epoch": epoch, **fixed, "note": metrics})
        if not engine.is_finite(metrics):
            # a diverged trial is recorded, not retried: the config, not the machine, is at fault
            return tune.report({**metrics, "val_acc": 0.0, "best_val_acc": 0.0, "epoch": epoch, **fixed,
                                "note": "diverged: non-finite loss"})
        improved = metrics["val_acc"] > best_acc
        if improved:
            best_acc, best_epoch = metrics["val_acc"], epoch
        ended = time.time()  # one reading: the time limit's check and the report's ended_at agree
        note = _stop_note(epoch, metrics, runtime, chance_bar, epoch_seconds=ended - began, now=ended)
        metrics.update(epoch=epoch, lr=lr, **fixed, best_val_acc=best_acc, best_epoch=best_epoch, note=note,
                       ended_at=ended)
        if improved:
            _report_with_checkpoint(model, optimizer, scheduler, generator, metrics)
        else:
            tune.report(metrics)
        faults.after_epoch(runtime.fault, epoch, restored=start > 1, node_id=fixed["node"])
        if note:
            return


def _run_epoch(model, optimizer, scheduler, generator, train, val, cfg: TrialConfig,
               out_of_memory: OutOfMemory) -> dict | str:
    """One epoch's metrics, or the note the trial ends with. An epoch that runs out of GPU memory
    runs again once `out_of_memory` finds room: from the epoch's first step of the LR schedule and
    draw of the random stream, on the weights as the failed batches left them."""
    mark = (scheduler.state_dict() if scheduler is not None else None), generator.get_state()
    while True:
        try:
            metrics = engine.train_epoch(model, optimizer, train, cfg.train, generator, scheduler)
            metrics.update(engine.evaluate(model, val))
            return metrics
        except torch.OutOfMemoryError as err:
            message = str(err)
        # out of the except block: the failed batch's tensors, which its traceback held, are free
        note = out_of_memory.note(message)
        if note:
            return note
        if scheduler is not None:
            scheduler.load_state_dict(mark[0])
        generator.set_state(mark[1])


class OutOfMemory:
    """What a trial does when it runs out of memory: on a GPU it shares, wait for the neighbours
    to leave room and try the epoch again (core/gpu_memory.py); elsewhere, or when that fails,
    the note it ends with."""

    def __init__(self, device: torch.device, share: float | None = None):
        self.device, self.tries = device, 0
        self.share = _gpu_share() if share is None and device.type == "cuda" else (share or 0.0)

    def note(self, message: str) -> str | None:
        """None: run the epoch again; else the trial's note. `message`: torch's error."""
        if self.device.type != "cuda":
            first = message.strip().splitlines()[0] if message.strip() else "out of memory"
            return f"out of memory: {first[:150]}"
        torch.cuda.empty_cache()
        self.tries += 1
        return gpu_memory.after_oom(torch.cuda.max_memory_reserved(self.device), self.share,
                                    gpu_memory.RETRIES - self.tries + 1)


def _gpu_share() -> float:
    return float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))


def _stop_note(epoch: int, metrics: dict, runtime: TrialRuntime, chance_bar: float | None,
               epoch_seconds: float, now: float) -> str:
    """Why the trial ends after `epoch`, before its max epochs: its first epoch left it at
    chance, or another epoch would end after the time limit; "" when it goes on. Either is a
    short run that measured something: the leaderboard's status, PRUNED in the study."""
    if epoch >= runtime.max_epochs:
        return ""
    if chance_bar is not None and epoch == 1 and chance.at_chance(metrics, chance_bar):
        return chance.note(metrics["val_acc"], epoch)
    if _out_of_time(runtime.deadline, epoch_seconds, now):
        return f"{TIME_LIMIT_NOTE}: stopped after epoch {epoch} of {runtime.max_epochs}"
    return ""
