"""Plain PyTorch training without Ray: it learns, and its pieces behave."""
import numpy as np
import pytest
import torch

from digitsearch import models
from digitsearch.core import engine
from digitsearch.core.config import TrainSettings


def test_fit_learns_digits(digits_bundle):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    b = digits_bundle
    mean, std = b.normalisation()
    train = engine.to_tensors(b.train.images, b.train.labels, mean, std)
    val = engine.to_tensors(b.val.images, b.val.labels, mean, std)
    model = models.create("cnn", depth=2, filters=[16, 32], pool="max")
    seen = []
    history = engine.fit(model, train, TrainSettings(lr=3e-3, batch_size=64), epochs=4,
                         on_epoch=lambda epoch, m: seen.append(epoch))
    assert seen == [1, 2, 3, 4] and len(history) == 4
    assert set(history[0]) == {"train_loss", "train_acc", "epoch_seconds", "images_per_second"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    result = engine.evaluate(model, val)
    assert result["val_acc"] > 0.85, result
    assert engine.predict(model, val).shape == (len(val),)


def test_to_tensors_normalises():
    images = np.full((4, 28, 28), 255, dtype=np.uint8)
    t = engine.to_tensors(images, np.arange(4), mean=0.5, std=0.25)
    assert t.x.shape == (4, 1, 28, 28) and torch.allclose(t.x, torch.full_like(t.x, 2.0))
    assert t.y.dtype == torch.long


def test_every_optimizer_builds():
    model = torch.nn.Linear(2, 2)
    kinds = {name: type(engine.make_optimizer(model, TrainSettings(optimizer=name))).__name__
             for name in ("adam", "adamw", "rmsprop", "sgd")}
    assert kinds == {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD"}


def test_is_finite():
    assert engine.is_finite({"a": 1.0, "b": "text"})
    assert not engine.is_finite({"a": float("nan")})


def test_cpu_without_bf16_keeps_fp32_and_nchw(monkeypatch):
    """DIGITSEARCH_CPU_BF16=0 (or a CPU without bf16 instructions): fp32 and NCHW throughout."""
    monkeypatch.setenv(engine.CPU_BF16_ENV, "0")
    cpu = torch.device("cpu")
    model = engine.prepare_model(models.create("cnn", depth=1, filters=[8], pool="max"), cpu)
    assert next(model.parameters()).is_contiguous()  # NCHW, not channels_last
    with engine.autocast(cpu, training=True):
        assert not torch.is_autocast_enabled("cpu")
    logits = engine.predict_logits(model, torch.zeros(3, 1, 28, 28))
    assert logits.dtype == torch.float32


def test_cpu_with_bf16_trains_in_bf16_channels_last_and_evaluates_in_fp32(monkeypatch):
    monkeypatch.setattr(engine, "_cpu_flags_have_bf16", lambda: True)  # as on the project's AVX512-BF16 EPYC
    monkeypatch.delenv(engine.CPU_BF16_ENV, raising=False)
    cpu = torch.device("cpu")
    model = engine.prepare_model(models.create("cnn", depth=2, filters=[8, 16], pool="max", batchnorm=True), cpu)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with engine.autocast(cpu, training=True):
        assert model(torch.zeros(4, 1, 28, 28)).dtype == torch.bfloat16
    with engine.autocast(cpu):  # evaluation: fp32, so val_acc and the exports compute the same numbers
        assert not torch.is_autocast_enabled("cpu")
    data = engine.to_tensors(np.random.default_rng(0).integers(0, 255, (64, 28, 28), np.uint8), np.arange(64) % 10,
                             0.5, 0.3)
    settings = TrainSettings(batch_size=32)
    metrics = engine.train_epoch(model, engine.make_optimizer(model, settings), data, settings,
                                 torch.Generator().manual_seed(0))
    assert engine.is_finite(metrics) and all(p.dtype == torch.float32 for p in model.parameters())
    assert engine.predict_logits(model, data.x).dtype == torch.float32


def test_a_gpu_computes_in_bf16_where_native_in_fp16_before_and_in_fp32_on_request(monkeypatch):
    monkeypatch.delenv(engine.GPU_AMP_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100, H100
    assert engine.gpu_dtype() == torch.bfloat16
    assert engine.loss_scaler(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), torch.device("cuda")) is None
    # a T4 or V100: bf16 only emulated (slower than fp32), so fp16, with a loss scaler per optimizer
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert engine.gpu_dtype() == torch.float16
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)])
    scaler = engine.loss_scaler(optimizer, torch.device("cuda"))
    assert isinstance(scaler, torch.amp.GradScaler) and engine.loss_scaler(optimizer, torch.device("cuda")) is scaler
    assert engine.loss_scaler(optimizer, torch.device("cpu")) is None  # the CPU trains in bf16 or fp32: no scaling
    monkeypatch.setenv(engine.GPU_AMP_ENV, "fp32")
    assert engine.gpu_dtype() is None
    with engine.autocast(torch.device("cuda")):
        assert not torch.is_autocast_enabled("cuda")


class _CountingScaler(torch.amp.GradScaler):
    steps = 0

    def step(self, optimizer, *args, **kwargs):
        type(self).steps += 1
        return super().step(optimizer, *args, **kwargs)


def test_fp16_steps_go_through_the_optimizer_s_loss_scaler_and_an_overflow_skips_the_step(monkeypatch):
    """The fp16 path on the CPU (a CPU GradScaler stands in for the card's): every batch's step
    goes through the scaler, one scaler for all epochs; a scale so large that the gradients
    overflow skips the step and leaves the weights as they were."""
    monkeypatch.setenv(engine.CPU_BF16_ENV, "0")
    monkeypatch.setattr(_CountingScaler, "steps", 0)
    scalers: dict = {}

    def scaler_of(optimizer, device):  # an infinite scale: every gradient overflows
        return scalers.setdefault(optimizer, _CountingScaler("cpu", init_scale=float("inf")))
    monkeypatch.setattr(engine, "loss_scaler", scaler_of)
    model = engine.prepare_model(models.create("cnn", depth=1, filters=[4], pool="max"), torch.device("cpu"))
    data = engine.to_tensors(np.random.default_rng(0).integers(0, 255, (64, 28, 28), np.uint8), np.arange(64) % 10,
                             0.5, 0.3)
    settings = TrainSettings(batch_size=64, optimizer="sgd", lr=0.1)  # one batch an epoch
    optimizer = engine.make_optimizer(model, settings)
    before = [p.detach().clone() for p in model.parameters()]
    engine.train_epoch(model, optimizer, data, settings, torch.Generator().manual_seed(0))
    scaler = scalers[optimizer]
    assert _CountingScaler.steps == 1  # through the scaler, which found the gradients overflowed: skipped
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    scaler.update(new_scale=1024.0)
    engine.train_epoch(model, optimizer, data, settings, torch.Generator().manual_seed(1))
    assert list(scalers) == [optimizer] and _CountingScaler.steps == 2
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # in range: the steps applied


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (checked on the GPU machine when one is lent)")
def test_gpu_training_uses_bf16_and_channels_last():
    cuda = torch.device("cuda")
    model = engine.prepare_model(models.create("cnn", depth=2, filters=[8, 16], pool="max"), cuda)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and torch.backends.cudnn.benchmark
    data = engine.to_tensors(np.zeros((64, 28, 28), np.uint8), np.arange(64) % 10, 0.0, 1.0, cuda)
    with engine.autocast(cuda):
        assert model(data.x[:4]).dtype == engine.gpu_dtype()  # bf16 on Ampere and later, fp16 before
    metrics = engine.train_epoch(model, engine.make_optimizer(model, TrainSettings(batch_size=32)), data,
                                 TrainSettings(batch_size=32), torch.Generator().manual_seed(0))
    assert engine.is_finite(metrics) and engine.predict_logits(model, data.x).dtype == torch.float32
