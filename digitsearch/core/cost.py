"""What a model costs to serve on a CPU: latency per image at batch 1, throughput at batch 256,
and its size on disk. Measured once per trial (search/trainable.py), before training: the
cost depends on the architecture, not on the weights.

How, so that two measurements of one model agree (tests/test_cost.py: within 15 %):
  - a copy of the model in eval mode, fp32, contiguous, on the CPU, under inference_mode:
    what `digitsearch predict` and the exported model.pt run (bf16 autocast and channels_last
    are training-time choices of engine.prepare_model);
  - warm-up runs first (oneDNN picks and caches its kernels on the first calls), then timed
    runs until both a count and a time are reached; the median, which one preempted run
    cannot move;
  - on the thread count the caller set (a trial's --cpus-per-trial), recorded with the CPU's
    model name beside the figures: a latency means nothing without them.
"""
from __future__ import annotations

import copy
import io
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

THROUGHPUT_BATCH = 256
# batch 1: at least this many timed runs and this much time (small nets run in ~0.2 ms)
LATENCY_RUNS, LATENCY_SECONDS, LATENCY_WARMUP = 15, 0.15, 3
# batch 256: a large net takes ~0.3 s a run, so fewer runs; the median of 3 still drops one outlier
THROUGHPUT_RUNS, THROUGHPUT_SECONDS, THROUGHPUT_WARMUP = 3, 0.25, 1
MAX_RUNS = 400  # a bound on the time-driven repeats of a very fast net


@dataclass(frozen=True)
class Cost:
    latency_ms: float  # median milliseconds per image at batch 1
    images_per_s: float | None  # at batch THROUGHPUT_BATCH: images / median seconds per batch (None: not asked)
    model_kb: float  # the weights as torch.save writes them (model.pt's bulk), kilobytes
    threads: int  # torch's intra-op threads the figures were measured on
    cpu: str  # the CPU's model name

    def metrics(self) -> dict:
        """The trial's result keys (the leaderboard's columns of the same names, cost_* the context)."""
        return {"latency_ms": self.latency_ms, "images_per_s": self.images_per_s, "model_kb": self.model_kb,
                "cost_threads": self.threads, "cost_cpu": self.cpu}


def measure(model: nn.Module, example: torch.Tensor, throughput: bool = True) -> Cost:
    """`model`'s cost for inputs shaped like `example` (one item, batch dimension first);
    `throughput=False` skips batch 256 (a retrained ensemble with TTA: seconds a run)."""
    served = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float().eval()
    one = example[:1].detach().to("cpu", torch.float32).contiguous()
    batch = one.expand(THROUGHPUT_BATCH, *one.shape[1:]).contiguous() if throughput else None
    with torch.inference_mode():
        latency = _median_seconds(served, one, LATENCY_WARMUP, LATENCY_RUNS, LATENCY_SECONDS)
        per_batch = _median_seconds(served, batch, THROUGHPUT_WARMUP, THROUGHPUT_RUNS, THROUGHPUT_SECONDS) \
            if throughput else None
    return Cost(latency_ms=round(latency * 1000, 4),
                images_per_s=round(THROUGHPUT_BATCH / per_batch, 1) if per_batch else None,
                model_kb=round(size_bytes(served) / 1024, 1), threads=torch.get_num_threads(), cpu=cpu_name())


def _median_seconds(model: nn.Module, x: torch.Tensor, warmup: int, runs: int, seconds: float) -> float:
    for _ in range(warmup):
        model(x)
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < MAX_RUNS and (len(times) < runs or time.perf_counter() - began < seconds):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def size_bytes(model: nn.Module) -> int:
    """Bytes of the model's state_dict as torch.save writes it (what model.pt holds, less its few
    hundred bytes of metadata)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def cpu_name() -> str:
    """e.g. "AMD EPYC 7B13"; the platform's processor string where /proc/cpuinfo has none (macOS)."""
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        found = None
    return found.group(1).strip() if found else (platform.processor() or platform.machine() or "unknown CPU")
