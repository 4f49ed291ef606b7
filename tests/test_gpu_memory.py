"""Out of GPU memory beside other trials: wait for room and run the epoch again, or end with the figures.
No GPU needed: the card's readings are given, and the trial's retry runs on the CPU."""
import numpy as np
import pytest
import torch

from digitsearch import models
from digitsearch.core import engine, gpu_memory
from digitsearch.core.config import TrialConfig
from digitsearch.core.gpu_memory import GIB, Card
from digitsearch.search import trainable

CARD = 16 * GIB


def _readings(*cards: Card):
    """read(): the cards in turn, the last one from then on."""
    seen = list(cards)
    return lambda: seen.pop(0) if len(seen) > 1 else seen[0]


def test_neighbours_that_free_the_room_let_the_epoch_run_again():
    crowded = Card(free=1 * GIB, total=CARD, own=2 * GIB)  # three neighbours hold 13 GiB
    roomy = Card(free=6 * GIB, total=CARD, own=2 * GIB)
    waits = []
    assert gpu_memory.after_oom(5 * GIB, 0.25, 3, _readings(crowded, crowded, roomy), waits.append) is None
    assert waits == [gpu_memory.POLL_S] * 2  # read three times: twice short of 5 x 1.25 GiB, then room


def test_neighbours_that_keep_the_room_end_the_trial_out_of_memory():
    crowded = Card(free=1 * GIB, total=CARD, own=2 * GIB)
    note = gpu_memory.after_oom(5 * GIB, 0.25, 3, _readings(crowded), lambda s: None, wait_s=10)
    assert note == "out of memory: 5.00 GiB at its peak on a 16.0 GiB card; other trials held 13.00 GiB for 10 s"
    note = gpu_memory.after_oom(5 * GIB, 0.25, 0, _readings(crowded), lambda s: None)
    assert note.startswith("out of memory: 5.00 GiB at its peak") and "after 3 waits" in note


def test_a_trial_that_would_not_fit_alone_or_had_the_card_alone_is_over_budget():
    empty = Card(free=14 * GIB, total=CARD, own=1 * GIB)
    note = gpu_memory.after_oom(13 * GIB, 0.25, 3, _readings(empty), lambda s: pytest.fail("no wait"))
    assert note == ("over budget: GPU memory: 13.00 GiB at its peak on a 16.0 GiB card, more than the card "
                    "holds for one trial")  # 13 x 1.25 > 16 x 0.95
    assert gpu_memory.after_oom(4 * GIB, 1.0, 3, _readings(empty), lambda s: None).startswith("over budget: GPU memory")


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step()` before")  # the stand-in's own steps
def test_an_epoch_that_ran_out_of_memory_runs_again_from_its_first_step(monkeypatch):
    model = models.create("cnn", depth=1, filters=[4], pool="max")
    cfg = TrialConfig.from_flat({"cnn.depth": 1, "cnn.filters_1": 4, "batch_size": 16, "schedule": "onecycle"}, "cnn")
    data = engine.to_tensors(np.zeros((32, 28, 28), np.uint8), np.arange(32) % 10, 0.0, 1.0)
    optimizer = engine.make_optimizer(model, cfg.train)
    scheduler = engine.make_scheduler(optimizer, cfg.train, 3, len(data))
    generator = engine.generator_for("cpu", 0)
    real, failures = engine.train_epoch, []

    def fails_once(model, optimizer, train, s, generator, scheduler):
        if not failures:
            for _ in range(2):  # two batches' steps of the schedule and two draws, then out of memory
                scheduler.step()
                torch.rand(1, generator=generator)
            failures.append(1)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, optimizer, train, s, generator, scheduler)

    expected = _after_one_epoch(torch.Generator().manual_seed(0), data, cfg)
    monkeypatch.setattr(engine, "train_epoch", fails_once)
    waited = trainable.OutOfMemory(torch.device("cpu"), share=0.25)
    monkeypatch.setattr(waited, "note", lambda err: None)  # the card had room after the wait
    metrics = trainable._run_epoch(model, optimizer, scheduler, generator, data, data, cfg, waited)
    assert isinstance(metrics, dict) and "val_acc" in metrics
    assert scheduler.last_epoch == 2  # the epoch's own two steps (32 images, batch 16), not four
    # the stream went on from the epoch's first draw: where a fresh one is after one whole epoch
    assert torch.equal(generator.get_state(), expected)


def _after_one_epoch(generator, data, cfg: TrialConfig):
    model = models.create("cnn", depth=1, filters=[4], pool="max")
    engine.train_epoch(model, engine.make_optimizer(model, cfg.train), data, cfg.train, generator)
    return generator.get_state()


def test_on_the_cpu_running_out_of_memory_ends_the_trial_with_torch_s_line():
    note = trainable.OutOfMemory(torch.device("cpu")).note("out of memory\nmore")
    assert note == "out of memory: out of memory"
