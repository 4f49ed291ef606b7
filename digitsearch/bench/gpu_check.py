"""`digitsearch bench --gpu` (`make gpu-check`): the check a person runs on a GPU machine in about
five minutes, its table in <out>/gpu-check-<host>-<date>.md and .json.

Each row is the product doing one thing on the GPU, through its own commands where it can be
(a fresh process, as a user runs it), with what it measured:
  environment   torch, CUDA, the card, its capability and whether it computes bf16 natively;
  visibility    a 0-GPU and a 0.5-GPU Ray task on this machine: the ids Ray gives, the device
                a trial would train on (a 0-GPU trial must train on the CPU);
  syncs         CUDA's sync debug mode over one epoch of the recipe net: host syncs per batch;
  packed        `tune --gpus-per-trial 0.2`: 5 trials at a time on one GPU, nvidia-smi's peaks;
  default       `tune` without --gpus-per-trial: the share it chose and said;
  ensemble      `best --retrain --ensemble 2 --tta --export onnx`, then `predict` on the CPU:
                how many of the GPU-trained model's test predictions the CPU gives again;
  time limit    `best --retrain --time-limit 45s`: its wall time;
  seq2seq       one trial of the LSTM adder;
  transfer      one trial of the transfer space (resnet18 from scratch: the machine may be offline);
  checkpoint    a trial's checkpoint written on the GPU and restored there: the same weights,
                the same next draw of the random stream, the same predictions;
  out of memory a trial whose neighbour process holds most of the card waits for it to leave
                (core/gpu_memory.py, on the card's own readings); one larger than the card is
                over budget.
Without a CUDA GPU the command says so in one line and exits 2.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from digitsearch.errors import UserError

STEP_TIMEOUT_S = 240  # one command of the check; the whole check aims at about five minutes
VERDICT = {True: "ok", False: "FAILED", None: "--"}
SEARCH = ("tune", "--space", "cnn", "--dataset", "digits")
SMI_QUERY = ("nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits")


@dataclass
class Row:
    check: str
    ok: bool | None  # None: a figure to read, no pass/fail
    figures: dict = field(default_factory=dict)
    note: str = ""


def require_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise UserError("bench --gpu checks the GPU path and this machine has no CUDA GPU torch can use "
                        "(torch.cuda.is_available() is False); run it where one is")


def run(out: Path, echo: Callable[[str], None] = print) -> Path:
    require_gpu()
    work = Path(tempfile.mkdtemp(prefix="digitsearch-gpu-check-"))
    rows = []
    try:
        for check in (environment, visibility, syncs, packed, default_share, ensemble, time_limit, seq2seq,
                      transfer, checkpoint_round_trip, out_of_memory):
            rows.append(_timed(check, work))
            echo(_line(rows[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return write(rows, out)


def _timed(check: Callable[[Path], Row], work: Path) -> Row:
    started = time.perf_counter()
    try:
        row = check(work)
    except Exception as err:  # one check failing must not hide the others' rows
        row = Row(check.__name__, False, note=f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")
    row.figures["seconds"] = round(time.perf_counter() - started, 1)
    return row


def _line(row: Row) -> str:
    figures = ", ".join(f"{k} {v}" for k, v in row.figures.items())
    return f"gpu-check: {row.check}: {VERDICT[row.ok]} ({figures}){' ' + row.note if row.note else ''}"


def write(rows: list[Row], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"gpu-check-{socket.gethostname()}-{time.strftime('%Y-%m-%d')}"
    stem.with_suffix(".json").write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n")
    lines = ["| check | result | figures | note |", "|---|---|---|---|"]
    for row in rows:
        figures = "; ".join(f"{k} {v}" for k, v in row.figures.items())
        lines.append(f"| {row.check} | {VERDICT[row.ok]} | {figures} | {row.note} |")
    stem.with_suffix(".md").write_text("# digitsearch bench --gpu\n\n" + "\n".join(lines) + "\n")
    return stem.with_suffix(".md")


# --- the checks -------------------------------------------------------------------------------


def environment(work: Path) -> Row:
    from importlib.metadata import version

    import torch

    from digitsearch.core import engine

    props = torch.cuda.get_device_properties(0)
    return Row("environment", None, {
        "card": props.name, "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1), "cards": torch.cuda.device_count(),
        "bf16_native": torch.cuda.is_bf16_supported(including_emulation=False),
        "autocast": str(engine.gpu_dtype() or "fp32").replace("torch.", ""),
        "torch": torch.__version__, "cuda": torch.version.cuda, "ray": version("ray")})


VISIBILITY = """
import json, ray, torch
from digitsearch.core.engine import device_for
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
def given():
    import os
    ids = ray.get_gpu_ids()
    return {"ids": [str(i) for i in ids], "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": device_for(ids, torch.cuda.is_available()).type}
print(json.dumps({str(s): ray.get(ray.remote(num_gpus=s, num_cpus=1)(given).remote()) for s in (0, 0.5)}))
"""


def visibility(work: Path) -> Row:
    ran = _python(VISIBILITY, work)
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    ok = seen["0"]["device"] == "cpu" and seen["0.5"]["device"] == "cuda" and len(seen["0.5"]["ids"]) == 1
    return Row("visibility", ok, {"0 GPU": seen["0"], "0.5 GPU": seen["0.5"]})


def syncs(work: Path) -> Row:
    """Host syncs per batch in one epoch of the recipe net on the digits (CUDA's sync debug mode)."""
    import warnings

    import torch

    from digitsearch.core import engine

    # after one epoch: cudnn.benchmark has picked its algorithms
    (model, optimizer, scheduler, generator), settings, train = _recipe_run(torch.device("cuda"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode(1)
        try:
            engine.train_epoch(model, optimizer, train, settings, generator, scheduler)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    batches = -(-len(train) // settings.batch_size)
    per_batch = round(len(caught) / batches, 2)
    allowed = 1 if engine.gpu_dtype() == torch.float16 else 0  # fp16's loss scaler reads its overflow flag
    return Row("syncs", per_batch <= allowed, {"syncs": len(caught), "batches": batches, "per_batch": per_batch},
               note=str(caught[0].message).split("\n")[0][:120] if caught else "")


def packed(work: Path) -> Row:
    cpus = max(1, (os.cpu_count() or 5) // 5)
    ran, peaks = _cli_watched(work, *SEARCH, "--trials", "10", "--max-epochs", "2", "--gpus-per-trial", "0.2",
                              "--cpus-per-trial", str(cpus), "--name", "packed")
    at_a_time = next((line.split(" at a time")[0].rsplit(" ", 1)[-1] for line in ran.stdout.splitlines()
                      if " at a time" in line), "?")
    return Row("packed", ran.returncode == 0 and at_a_time == "5", {"at_a_time": at_a_time, **peaks},
               note=_failure(ran))


def default_share(work: Path) -> Row:
    ran, _ = _cli_watched(work, *SEARCH, "--trials", "4", "--max-epochs", "1", "--name", "default")
    said = next((line for line in ran.stdout.splitlines() if line.startswith("gpus:")), "")
    meta = work / "results" / "default" / "experiment.json"
    share = json.loads(meta.read_text()).get("gpus_per_trial") if meta.is_file() else None
    return Row("default", ran.returncode == 0 and share == 0.25 and bool(said), {"gpus_per_trial": share},
               note=said or _failure(ran))


def ensemble(work: Path) -> Row:
    from digitsearch import data
    from digitsearch.data.kaggle_csv import LABEL

    ran, peaks = _cli_watched(work, "best", "--name", "packed", "--retrain", "--ensemble", "2", "--tta",
                              "--epochs", "2", "--export", "onnx")
    if ran.returncode != 0:
        return Row("ensemble", False, peaks, note=_failure(ran))
    import pandas as pd

    test = data.load("digits").test
    table = pd.DataFrame(test.images.reshape(len(test), -1), columns=[f"pixel{i}" for i in range(28 * 28)])
    table.insert(0, LABEL, test.labels)
    table.to_csv(work / "test.csv", index=False)
    final = work / "results" / "packed" / "final"
    predicted = _cli(work, "predict", "--model", str(final / "model.pt"), "--input", str(work / "test.csv"),
                     "--output", str(work / "cpu.csv"), env={"CUDA_VISIBLE_DEVICES": ""})
    if predicted.returncode != 0:
        return Row("ensemble", False, peaks, note=_failure(predicted))
    gpu, cpu = pd.read_csv(final / "predictions.csv")["Label"], pd.read_csv(work / "cpu.csv")["Label"]
    agreement = float((gpu.to_numpy() == cpu.to_numpy()).mean())
    return Row("ensemble", agreement >= 0.99, {"cpu_gpu_agreement": round(agreement, 4), **peaks})


def time_limit(work: Path) -> Row:
    started = time.perf_counter()
    ran, _ = _cli_watched(work, "best", "--name", "packed", "--retrain", "--time-limit", "45s")
    wall = round(time.perf_counter() - started, 1)
    return Row("time limit", ran.returncode == 0 and wall <= 45 * 1.1, {"limit_s": 45, "wall_s": wall},
               note=_failure(ran))


def seq2seq(work: Path) -> Row:
    ran, peaks = _cli_watched(work, "tune", "--space", "seq2seq", "--dataset", "addition", "--trials", "1",
                              "--max-epochs", "1", "--name", "adder")
    return Row("seq2seq", ran.returncode == 0, peaks, note=_failure(ran))


def transfer(work: Path) -> Row:
    ran, peaks = _cli_watched(work, "tune", "--space", "transfer", "--dataset", "digits", "--trials", "1",
                              "--max-epochs", "1", "--set", "transfer.init=scratch", "--set",
                              "transfer.backbone=resnet18", "--name", "transfer")
    return Row("transfer", ran.returncode == 0, peaks, note=_failure(ran))


def checkpoint_round_trip(work: Path, device: str = "cuda") -> Row:
    import torch

    from digitsearch.core import checkpoint, engine

    device = torch.device(device)
    saved, _, data = _recipe_run(device)
    checkpoint.save(work / "model.pt", *saved, {"epoch": 1, "val_acc": 0.0})
    restored, _, _ = _recipe_run(device, epochs=0)
    checkpoint.restore(checkpoint.load(work / "model.pt"), *restored)
    same_weights = all(torch.equal(a, b) for a, b in zip(saved[0].state_dict().values(),
                                                        restored[0].state_dict().values()))
    same_stream = torch.equal(torch.rand(4, generator=saved[3], device=device),
                              torch.rand(4, generator=restored[3], device=device))
    same_predictions = torch.equal(engine.predict_logits(saved[0], data.x).argmax(1),
                                   engine.predict_logits(restored[0], data.x).argmax(1))
    return Row("checkpoint", same_weights and same_stream and same_predictions,
               {"weights": same_weights, "stream": same_stream, "predictions": same_predictions})


def _recipe_run(device, epochs: int = 1):
    """(model, optimizer, scheduler, generator) of the recipe net on the digits after `epochs`
    of a 2-epoch schedule, its training settings and its training tensors."""
    from digitsearch import data
    from digitsearch.bench.baseline import recipe
    from digitsearch.core import engine
    from digitsearch.core.build import build_model
    from digitsearch.core.config import TrialConfig

    bundle = data.load("digits")
    cfg = TrialConfig.from_flat(recipe(), "cnn")
    mean, std = bundle.normalisation()
    model = engine.prepare_model(build_model(cfg, bundle, mean, std), device)
    train = engine.to_tensors(bundle.train.images, bundle.train.labels, mean, std, device)
    optimizer = engine.make_optimizer(model, cfg.train)
    scheduler = engine.make_scheduler(optimizer, cfg.train, 2, len(train))
    generator = engine.generator_for(device, 0)
    for _ in range(epochs):
        engine.train_epoch(model, optimizer, train, cfg.train, generator, scheduler)
    return (model, optimizer, scheduler, generator), cfg.train, train


NEIGHBOUR = """
import sys, time, torch
block = torch.empty(int(sys.argv[1]), dtype=torch.uint8, device="cuda")
print("held", flush=True)
time.sleep(600)
"""


def out_of_memory(work: Path) -> Row:
    import torch

    from digitsearch.core import gpu_memory

    free, total = torch.cuda.mem_get_info()
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(int(free * 0.6))], stdout=subprocess.PIPE,
                                 text=True)
    try:
        neighbour.stdout.readline()  # "held": the card now has about 0.4 of what was free
        threading.Timer(5.0, neighbour.kill).start()
        started = time.perf_counter()
        waited = gpu_memory.after_oom(int(free * 0.6), 0.25, gpu_memory.RETRIES, wait_s=60)  # asks 0.75 of it
        waited_s = time.perf_counter() - started
    finally:
        neighbour.kill()
    too_big = gpu_memory.after_oom(total, 0.25, gpu_memory.RETRIES) or ""
    ok = waited is None and waited_s >= 4 and too_big.startswith("over budget: GPU memory")
    return Row("out of memory", ok, {"waited_s": round(waited_s, 1), "card_gib": round(total / 2**30, 1)},
               note=too_big if ok else f"{waited or 'room'} after {waited_s:.1f} s; {too_big}")


# --- running the product ------------------------------------------------------------------------


def _cli(work: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    results = ("--results", str(work / "results")) if args[0] in ("tune", "best") else ()
    return subprocess.run([sys.executable, "-m", "digitsearch.cli", *args, *results], cwd=work,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)


def _cli_watched(work: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The command, with nvidia-smi's peak memory and utilisation over its run."""
    peaks = {"peak_memory_mib": 0, "peak_util_pct": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            for memory, util in _smi():
                peaks["peak_memory_mib"] = max(peaks["peak_memory_mib"], memory)
                peaks["peak_util_pct"] = max(peaks["peak_util_pct"], util)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        ran = _cli(work, *args)
    finally:
        done.set()
        watcher.join()
    return ran, peaks


def _smi() -> list[tuple[int, int]]:
    """(memory used MiB, utilisation %) per card; none when nvidia-smi is not there."""
    try:
        text = subprocess.run(SMI_QUERY, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in text.strip().splitlines():
        try:
            memory, util = (int(v) for v in line.split(","))
        except ValueError:  # "[N/A]" where a card does not report one
            continue
        found.append((memory, util))
    return found


def _python(script: str, work: Path) -> subprocess.CompletedProcess:
    ran = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True,
                         timeout=STEP_TIMEOUT_S)
    if ran.returncode != 0:
        raise RuntimeError(ran.stderr.strip().splitlines()[-1] if ran.stderr.strip() else f"exit {ran.returncode}")
    return ran


def _failure(ran: subprocess.CompletedProcess) -> str:
    if ran.returncode == 0:
        return ""
    lines = (ran.stderr or ran.stdout).strip().splitlines()
    return f"exit {ran.returncode}: {lines[-1][:200] if lines else ''}"
