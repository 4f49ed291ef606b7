"""Plain PyTorch training: tensors in memory, batches by index, no Ray anywhere.

The Ray trainable and `best --retrain` both drive these functions, and tests run them
directly. Data become float tensors once; an epoch slices a permutation; augmentation is
batched on the tensors' device (core.augment); the LR schedule steps per batch (core.schedules);
evaluation runs under inference_mode at a large batch; the host syncs once per epoch, not per step.
On a GPU (prepare_model, autocast): channels_last weights, cudnn.benchmark and autocast in the
card's mixed precision (gpu_dtype: bf16 on Ampere and later, fp16 with a loss scaler before).
On a CPU with bf16 instructions (cpu_bf16): channels_last and bf16 autocast for the training
steps of image nets, which more than doubles their speed here; evaluation and predictions stay fp32.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from digitsearch.core import augment, schedules
from digitsearch.core.config import TrainSettings
from digitsearch.core.tasks import ImageTask, SequenceTask
from digitsearch.core.timebudget import Clock

EVAL_BATCH = 1024
# an epoch's seconds are read from time.perf_counter (monotonic) in every run; a test of a time
# limit passes a Clock its model moves, to simulate epochs of any length in no time


@dataclass
class Tensors:
    """One split as model inputs (images (N, 1, H, W) or one-hot sequences) and int64 targets."""

    x: Tensor
    y: Tensor | None
    task: ImageTask | SequenceTask = ImageTask()

    def __len__(self) -> int:
        return len(self.x)


def default_device() -> torch.device:
    """The GPU when this process can see one: for the retrain and the bench, which run outside Ray.
    A search trial uses `device_for` what Ray gave it: Ray leaves every GPU visible to a trial
    that asked for none (CUDA_VISIBLE_DEVICES is not emptied for zero-GPU tasks)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def generator_for(device: torch.device | str, seed: int) -> torch.Generator:
    """The random stream of a training run, on the device its data are on: shuffles, class
    sampling and augmentation draws are made where they are used, no copy from the host per batch
    (on a CPU the same stream as a plain torch.Generator)."""
    return torch.Generator(device=device).manual_seed(seed)


def device_for(assigned_gpus: list, cuda_available: bool) -> torch.device:
    """A trial's device: the GPU Ray assigned it (CUDA_VISIBLE_DEVICES then names only that one,
    so it is cuda:0), else the CPU, whatever GPUs the process can see."""
    return torch.device("cuda" if assigned_gpus and cuda_available else "cpu")


# "0" trains in fp32 on a CPU that has bf16 (to compare, or to reproduce a run made without it)
CPU_BF16_ENV = "DIGITSEARCH_CPU_BF16"


@functools.cache
def _cpu_flags_have_bf16() -> bool:
    """Whether this CPU executes bf16 dot products natively (AVX512-BF16 or AMX: Zen 4+, Cooper
    Lake, Sapphire Rapids+). Without them oneDNN emulates bf16 and it is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def cpu_bf16() -> bool:
    """Whether image nets train under bf16 autocast, channels_last, on this CPU. Measured on the
    project's 2-core AMD EPYC (AVX512-BF16), the cnn recipe net at batch 128: 638 img/s in fp32,
    1,377 with both (2 threads; 360 -> 885 on one). Weights, optimizer state and the loss stay
    fp32 (autocast lowers only convolutions and matmuls); docs/benchmark.md compares the two."""
    chosen = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if chosen in ("0", "false", "no", "off"):
        return False
    return _cpu_flags_have_bf16()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on `device`. On a GPU also channels_last (cuDNN's fastest convolutions are NHWC;
    the inputs follow the weights' layout) and cudnn.benchmark (every batch has the same shape,
    so the fastest algorithm is picked once). On a CPU, channels_last only with bf16 training
    (cpu_bf16): oneDNN's bf16 convolutions are fastest in NHWC, its fp32 ones gain less."""
    model = model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    elif cpu_bf16():
        model = model.to(memory_format=torch.channels_last)
    return model


# "fp32" trains and predicts on a GPU in full precision (to compare, or where a net misbehaves in fp16)
GPU_AMP_ENV = "DIGITSEARCH_GPU_AMP"


def gpu_dtype() -> torch.dtype | None:
    """What autocast computes in on this process's GPU: bf16 where the card has it natively
    (Ampere and later; `is_bf16_supported` alone counts emulation, slower than fp32 on a T4 or
    V100), else fp16, whose narrow range needs the loss scaled (loss_scaler); None (fp32) when
    DIGITSEARCH_GPU_AMP=fp32."""
    if os.environ.get(GPU_AMP_ENV, "").strip().lower() in ("fp32", "0", "off", "no"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


_SCALERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def loss_scaler(optimizer: torch.optim.Optimizer, device: torch.device) -> torch.amp.GradScaler | None:
    """The GradScaler the optimizer's fp16 steps go through, kept with the optimizer so that its
    scale, found once, carries over from epoch to epoch; None where steps need none (bf16, fp32).
    It checks each batch's gradients for overflow on the host: the fp16 path syncs once a batch."""
    if device.type != "cuda" or gpu_dtype() != torch.float16:
        return None
    return _SCALERS.setdefault(optimizer, torch.amp.GradScaler("cuda"))


def autocast(device: torch.device, training: bool = False):
    """On a GPU, autocast in gpu_dtype (training and evaluation alike). On a CPU only for
    training steps where cpu_bf16 says it pays. Evaluation on a CPU stays fp32: val_acc and the
    exported model (ONNX, TorchScript) then compute the same numbers."""
    if device.type == "cuda" and (dtype := gpu_dtype()) is not None:
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and training and cpu_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_tensors(images: np.ndarray, labels, mean: float, std: float, device="cpu", task=None) -> Tensors:
    task = task or ImageTask()
    x = task.inputs(images, mean, std, device)
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
    return Tensors(x, y, task)


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    params = model.parameters()
    if s.optimizer == "sgd":
        # Nesterov needs momentum: a space that fixes momentum at 0 gets plain SGD, not a crash
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                               nesterov=s.momentum > 0)
    if s.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)


def make_scheduler(optimizer, s: TrainSettings, epochs: int, examples: int):
    """The LR schedule of a run of `epochs` epochs over `examples` examples (core.schedules),
    stepped after every batch by train_epoch."""
    return schedules.make(optimizer, s, epochs, examples)


def class_balance(y: Tensor, balance: str, generator) -> tuple[Tensor | None, Tensor | None]:
    """(epoch order or None, loss weights or None) for `balance`.

    oversample: draw every class equally often (with replacement) over an epoch of the
    usual length; class_weight: weight the loss by inverse class frequency (mean 1).
    """
    if balance == "none":
        return None, None
    counts = torch.bincount(y).float()
    present = counts > 0
    if balance == "oversample":
        per_sample = (1.0 / counts.clamp(min=1))[y]
        return torch.multinomial(per_sample.to(generator.device), len(y), replacement=True, generator=generator), None
    weight = torch.zeros_like(counts)
    weight[present] = counts.sum() / (present.sum() * counts[present])
    return None, weight


def train_epoch(model, optimizer, data: Tensors, s: TrainSettings, generator, scheduler=None,
                interrupt: Callable[[], bool] | None = None, clock: Clock = time.perf_counter) -> dict:
    """One pass over `data`, stepping `scheduler` (make_scheduler's) after every batch; returns
    train_loss, train_acc, epoch_seconds (read on `clock`), images_per_second. `interrupt()` -> True
    between two batches ends the pass there (a time limit reached mid-epoch); `interrupted: True` then says so."""
    start = clock()
    model.train()
    task = data.task
    order, class_weight = class_balance(data.y, s.balance, generator) if task.name == "image" else (None, None)
    if order is None:
        order = torch.randperm(len(data), generator=generator, device=generator.device)
    order = order.to(data.x.device)
    total_loss = torch.zeros((), device=data.x.device)
    correct = torch.zeros((), device=data.x.device, dtype=torch.long)
    seen, interrupted = 0, False
    scaler = loss_scaler(optimizer, data.x.device)
    for first in range(0, len(data), s.batch_size):
        if seen and interrupt is not None and interrupt():
            interrupted = True
            break
        idx = order[first : first + s.batch_size]
        if len(idx) < 2 and seen:  # a batch of one breaks batchnorm; drop it
            break
        xb, yb = data.x[idx], data.y[idx]
        if task.name == "image" and augment.is_active(s):
            xb = augment.apply(xb, s, generator)
        # bf16 on a CPU only for images: the sequence nets' LSTMs gain nothing and lose precision
        with autocast(xb.device, training=task.name == "image"):
            logits = task.forward(model, xb, yb)
        # the loss in fp32 whatever the net computed in: bf16's 8-bit mantissa would blur class weights
        loss = task.loss(logits.float(), yb, class_weight, s.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        _step(loss, optimizer, scaler)
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(idx)
        correct += task.correct(logits.detach(), yb)
        seen += len(idx)
    seconds = clock() - start
    return {
        "train_loss": total_loss.item() / seen,  # the one host sync of the epoch
        "train_acc": correct.item() / seen,
        "epoch_seconds": seconds,
        "images_per_second": seen / seconds,
        **({"interrupted": True} if interrupted else {}),
    }


def _step(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)  # skipped when the fp16 gradients overflowed; the scale then shrinks
    scaler.update()


def predict_logits(model: nn.Module, x: Tensor, batch_size: int = EVAL_BATCH) -> Tensor:
    model.eval()
    with torch.inference_mode(), autocast(x.device):
        # float: metrics and softmax probabilities in full precision whatever autocast computed in
        return torch.cat([model(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, data: Tensors) -> np.ndarray:
    """Predicted class per image (or symbol ids per sequence): what exports and metrics are built on."""
    return data.task.predict(predict_logits(model, data.x)).cpu().numpy()


def evaluate(model: nn.Module, data: Tensors) -> dict:
    logits = predict_logits(model, data.x)
    loss = data.task.loss(logits, data.y).item()
    acc = data.task.correct(logits, data.y).item() / len(data)
    return {"val_loss": loss, "val_acc": acc}


def is_finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def fit(
    model: nn.Module,
    train: Tensors,
    s: TrainSettings,
    epochs: int,
    seed: int = 0,
    on_epoch: Callable[[int, dict], None] | None = None,
    stop: Callable[[int, dict], bool] | None = None,
    interrupt: Callable[[], bool] | None = None,
    replan: Callable[[list[dict], int], int] | None = None,
    clock: Clock = time.perf_counter,
) -> list[dict]:
    """Train for `epochs` epochs; `on_epoch(epoch, metrics)` after each (progress, logging).
    Under a time limit: `replan(history, planned)` after each epoch -> the epochs the run can
    still have in all; fewer than planned refits the rest of the LR schedule into them
    (schedules.shorten), so the run still anneals. `stop(epoch, metrics)` -> True ends the
    training after that epoch, the schedule as it is. `interrupt()` -> True ends it between two
    batches (when an epoch runs far slower than the ones before it). `clock`: what each epoch's
    `epoch_seconds`, which replan and stop go by, is read from (train_epoch).
    Returns each trained epoch's metrics, the interrupted one included; the last says
    `schedule_refitted` when the run ended early on a refitted schedule."""
    generator = generator_for(train.x.device, seed)
    optimizer = make_optimizer(model, s)
    scheduler = make_scheduler(optimizer, s, epochs, len(train))
    history, planned = [], epochs
    while len(history) < planned:
        epoch = len(history) + 1
        metrics = train_epoch(model, optimizer, train, s, generator, scheduler, interrupt, clock)
        history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        if metrics.get("interrupted") or epoch == planned:
            break
        fits = replan(history, planned) if replan else planned
        if fits <= epoch or (stop and stop(epoch, metrics)):
            break
        if fits < planned:
            schedules.shorten(scheduler, s, len(train), planned, fits)
            planned = fits
    if len(history) == planned < epochs:
        history[-1]["schedule_refitted"] = True  # it ran the epochs the schedule was refitted into
    return history
