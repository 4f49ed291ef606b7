"""The training recipe: LR schedules planned over a run's steps, batched augmentations, and
flips only where the data allow them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from digitsearch.core import augment, schedules
from digitsearch.core.build import check_settings
from digitsearch.core.config import TrainSettings, TrialConfig
from digitsearch.errors import UserError
from digitsearch.search import preflight
from digitsearch.spaces import load as load_space


def _lrs(s: TrainSettings, epochs: int, examples: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr)
    scheduler = schedules.make(optimizer, s, epochs, examples)
    seen = []
    for _ in range(epochs * schedules.steps_per_epoch(examples, s.batch_size)):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_step_decay_changes_once_per_decay_every_epochs():
    lrs = _lrs(TrainSettings(lr=1.0, lr_decay=0.94, decay_every=2, batch_size=10), epochs=4, examples=20)
    assert np.allclose(lrs, [1.0] * 4 + [0.94] * 4)  # two batches an epoch, decayed after epoch 2


def test_cosine_warms_up_then_anneals_to_zero():
    lrs = _lrs(TrainSettings(lr=1.0, schedule="cosine", warmup=0.1, batch_size=10), epochs=10, examples=100)
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5)  # linear warmup over 10 of 100 steps
    assert lrs[10] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)
    assert lrs[-1] < 0.001 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_onecycle_starts_low_peaks_at_lr_and_ends_near_zero():
    lrs = _lrs(TrainSettings(lr=0.4, schedule="onecycle", batch_size=10), epochs=4, examples=100)
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(0.4 / 25) and lrs[peak] == pytest.approx(0.4, rel=0.02)
    assert peak == pytest.approx(0.25 * len(lrs), abs=1)  # the default warmup share
    assert lrs[-1] < 0.4 * 0.01  # the last batch is one step short of the end (lr/10^4)


def test_a_restored_schedule_continues_where_it_was():
    s = TrainSettings(lr=1.0, schedule="cosine", warmup=0.2, batch_size=10)
    lrs = _lrs(s, epochs=5, examples=50)
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=s.lr)
    scheduler = schedules.make(optimizer, s, 5, 50)
    schedules.seek(scheduler, 12)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lrs[12])
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lrs[13])


def _shortened_lrs(s: TrainSettings, planned: int, shorten_at: dict[int, int], examples: int) -> list[float]:
    """The LR of each batch of a run planned for `planned` epochs, shortened to shorten_at[epoch]
    epochs after that epoch (as engine.fit does under a time limit), to its new end."""
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=s.lr)
    scheduler = schedules.make(optimizer, s, planned, examples)
    per_epoch, seen, epochs = schedules.steps_per_epoch(examples, s.batch_size), [], planned
    epoch = 0
    while epoch < epochs:
        for _ in range(per_epoch):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        epoch += 1
        if epoch in shorten_at:
            schedules.shorten(scheduler, s, examples, epochs, shorten_at[epoch])
            epochs = shorten_at[epoch]
    return seen


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_shortened_run_keeps_its_progress_and_still_anneals(schedule):
    """Under a time limit the rest of the schedule is fitted into the epochs that still fit: no jump
    in the LR, and the last batch is as annealed as a run planned that short from the start."""
    s = TrainSettings(lr=1.0, schedule=schedule, warmup=0.2, batch_size=10)
    whole = _lrs(s, epochs=10, examples=100)
    short = _shortened_lrs(s, planned=10, shorten_at={4: 8, 6: 7}, examples=100)  # twice: 10 -> 8 -> 7
    assert len(short) == 70 and short[:41] == pytest.approx(whole[:41])  # the same up to the first refit
    steps = np.abs(np.diff(short))
    assert steps.max() < 2.5 * np.abs(np.diff(whole)).max()  # no jump, only a steeper anneal
    assert all(a >= b for a, b in zip(short[20:], short[21:]))  # still annealing after the warmup
    assert short[-1] == pytest.approx(_lrs(s, epochs=7, examples=100)[-1], abs=0.02)  # annealed at its new end
    assert short[-1] < 0.02


def test_step_decay_is_left_as_it_is_and_a_shortened_schedule_saves_plain_numbers(tmp_path):
    s = TrainSettings(lr=1.0, lr_decay=0.5, decay_every=1, batch_size=10)
    assert _shortened_lrs(s, planned=4, shorten_at={1: 2}, examples=20) == pytest.approx([1.0, 1.0, 0.5, 0.5])
    cosine = TrainSettings(lr=1.0, schedule="cosine", batch_size=10)
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    scheduler = schedules.make(optimizer, cosine, 4, 20)
    optimizer.step()
    scheduler.step()
    schedules.shorten(scheduler, cosine, 20, 4, 2)
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    assert torch.load(tmp_path / "s.pt", weights_only=True)["last_epoch"] == 1  # no object in it


def _blob(n: int = 16) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    return x


def test_affine_warps_each_image_its_own_way():
    x = _blob()
    out = augment.affine(x, "strong", torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out[0], out[1])
    assert abs(out.sum().item() - x.sum().item()) / x.sum().item() < 0.6  # moved, not erased


def test_shift_moves_whole_pixels_by_at_most_two():
    x = _blob(64)
    out = augment.shift(x, torch.Generator().manual_seed(0))
    assert torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # an interior blob is moved, never cut or blurred
    rows = out[:, 0].sum(2).argmax(1) - x[:, 0].sum(2).argmax(1)
    cols = out[:, 0].sum(1).argmax(1) - x[:, 0].sum(1).argmax(1)
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) > 5  # many offsets, per image


def test_flip_mirrors_about_half_the_images():
    x = _blob(200)
    x[:, :, 10:18, 12] = 2.0  # not symmetric: a mirrored image differs from the original
    out = augment.flip(x, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(o, i.flip(-1)) and not torch.equal(o, i) for o, i in zip(out, x)]
    assert 70 < sum(mirrored) < 130


def test_erasing_blanks_one_rectangle_with_its_probability():
    x = torch.ones(400, 1, 28, 28)
    assert torch.equal(augment.erase(x, 0.0, torch.Generator().manual_seed(0)), x)
    out = augment.erase(x, 0.5, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    share = erased.float() / (28 * 28)
    assert 0.35 < (erased > 0).float().mean() < 0.65
    assert share.max() <= 0.3 and share[erased > 0].min() >= 0.01


def test_apply_composes_what_the_settings_ask():
    x = _blob()
    untouched = augment.apply(x, TrainSettings(), torch.Generator().manual_seed(0))
    assert torch.equal(untouched, x) and not augment.is_active(TrainSettings())
    s = TrainSettings(augment="shift", erasing=1.0, flip=True)
    assert augment.is_active(s)
    assert not torch.equal(augment.apply(x, s, torch.Generator().manual_seed(0)), x)


def test_flip_is_refused_on_data_that_are_not_mirror_safe(digits_bundle):
    cfg = TrialConfig.from_flat({"cnn.depth": 1, "cnn.filters_1": 4, "flip": True}, "cnn")
    with pytest.raises(UserError, match="digits is not mirror-safe"):
        check_settings(cfg, digits_bundle)


def test_a_searched_flip_is_fixed_off_for_digits_and_an_insisted_one_refused():
    space = load_space("cnn")
    assert set(preflight.values_of(space, "flip")) == {False, True}
    notes = []
    pinned = preflight.check(space, "image", "digits", notes.append, mirror_safe=False)
    assert preflight.values_of(pinned, "flip") == (False,) and "flip fixed to false" in notes[0]
    assert set(preflight.values_of(preflight.check(space, "image", "fashion-mnist", notes.append, True),
                                   "flip")) == {False, True}
    with pytest.raises(UserError, match="not mirror-safe"):
        preflight.check(space.fixed({"flip": True}), "image", "mnist-10k", notes.append, mirror_safe=False)


def test_fashion_is_mirror_safe_and_digits_are_not(digits_bundle):
    from digitsearch.data.catalog import MIRROR_SAFE

    assert "fashion-mnist" in MIRROR_SAFE and not digits_bundle.mirror_safe


def test_the_recipe_net_flips_on_mirror_safe_data_and_the_users_nets_keep_their_own_flip():
    space = load_space("cnn")
    assert "flip" not in space.starting_points[0]  # the recipe leaves it to the data
    on_fashion = preflight.check(space, "image", "fashion-mnist", [].append, mirror_safe=True)
    assert [p["flip"] for p in on_fashion.starting_points] == [True, False, False, False]
    on_digits = preflight.check(space, "image", "digits", [].append, mirror_safe=False)
    assert all("flip" not in p for p in on_digits.starting_points) and on_digits.constants["flip"] is False


def test_mirrored_test_views_only_for_nets_trained_with_flips(digits_bundle):
    import dataclasses

    from digitsearch.final import ensemble, retrain
    from digitsearch.final import plan as retrain_plan

    def member(flip: bool):
        cfg = TrialConfig.from_flat({"cnn.depth": 1, "cnn.filters_1": 4, "flip": flip}, "cnn")
        return retrain_plan.Member(trial={}, cfg=cfg, epochs=1)

    clothes = dataclasses.replace(digits_bundle, mirror_safe=True)
    assert retrain.ensemble_views(clothes, True, (member(True), member(True)))[-1] == ensemble.FLIP
    assert ensemble.FLIP not in retrain.ensemble_views(clothes, True, (member(True), member(False)))
    assert ensemble.FLIP not in retrain.ensemble_views(digits_bundle, True, (member(False),))
    assert retrain.ensemble_views(clothes, False, (member(True),)) == ensemble.IDENTITY
    # the time plan costs the widest views the data allow: the members it keeps may allow them all
    assert retrain.ensemble_views(clothes, True)[-1] == ensemble.FLIP
    assert ensemble.FLIP not in retrain.ensemble_views(digits_bundle, True)


def test_an_epoch_draws_its_randomness_on_the_datas_device_and_syncs_once():
    """Every random draw of an epoch (shuffle, class sampling, shifts, flips, erasing) names the
    generator's device, so on a GPU none is made on the host and copied per batch; the epoch's own
    code reads its figures back from the device once, at its end (two .item() calls, no .cpu() or
    .tolist())."""
    import sys
    from pathlib import Path

    from torch.overrides import TorchFunctionMode

    from digitsearch.core import engine
    from digitsearch.models import create

    ours = str(Path(engine.__file__).parents[1])  # the digitsearch package
    drawing = {torch.rand, torch.randint, torch.randperm, torch.multinomial}
    reading = {torch.Tensor.item, torch.Tensor.cpu, torch.Tensor.tolist, torch.Tensor.numpy}
    draws, reads = [], []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in drawing:
                draws.append((func.__name__, kwargs.get("device")))
            if func in reading and sys._getframe(1).f_code.co_filename.startswith(ours):  # not torch's optimizer
                reads.append(func.__name__)
            return func(*args, **kwargs)

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (96, 28, 28), dtype=np.uint8), np.repeat(np.arange(3), 32)
    data = engine.to_tensors(images, labels, 0.1, 0.3)
    model = create("cnn", num_classes=3, image_size=28, depth=1, filters=[4], dense_layers=0)
    s = TrainSettings(batch_size=32, augment="shift", flip=True, erasing=0.5, balance="oversample")
    generator = engine.generator_for("cpu", 0)
    with Watch():
        engine.train_epoch(model, engine.make_optimizer(model, s), data, s, generator)
    assert {name for name, _ in draws} >= {"rand", "randint", "multinomial"}
    assert all(device == generator.device for name, device in draws if name != "multinomial"), draws
    assert reads == ["item", "item"]
