"""Configs that cannot be trials are skipped before they cost one (search/feasible.py): the probe
builds a sampled config's net as the trainable would, and the searcher (search/reconcile.py)
tells the study a skipped config and draws again. Real Optuna studies in memory, real nets of
the cnn family on a small bundle of 28x28 images; no Ray."""
from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest
import torch

from digitsearch.core.build import build_model
from digitsearch.core.config import TrialConfig
from digitsearch.data.bundle import Bundle, Split
from digitsearch.search.feasible import (
    INFEASIBLE,
    OVER_BUDGET,
    SKIPPED_ATTR,
    Budget,
    Probe,
    Skip,
    size_of,
    skipped_summary,
)
from digitsearch.search.mutation import TUNE_TRIAL_ATTR
from digitsearch.search.reconcile import MAX_DRAWS, UNUSABLE, ResumableOptunaSearch, ran_trials
from digitsearch.spaces import MIXED

optuna.logging.set_verbosity(optuna.logging.WARNING)
COMPLETE = optuna.trial.TrialState.COMPLETE
SMALL = {"cnn.depth": 1, "cnn.filters_1": 16}
WIDE = {"cnn.depth": 2, "cnn.filters_1": 128, "cnn.filters_2": 128, "cnn.dense_layers": 1, "cnn.dense_1": 512}
POOLED_AWAY = {"cnn.depth": 5, **{f"cnn.filters_{k}": 16 for k in range(1, 6)}, "cnn.padding": "valid",
               "cnn.kernel": 5}
BUDGET = Budget(max_params=50_000, max_mflops=40.0)


def _bundle(images: int = 40) -> Bundle:
    pixels = np.zeros((images, 28, 28), np.uint8)
    pixels[:, 6:22, 10:18] = 200
    labels = np.arange(images) % 10
    return Bundle("toy", Split(pixels, labels), Split(pixels[:10], labels[:10]), None, [str(k) for k in range(10)])


def _probe(budget: Budget = BUDGET) -> Probe:
    return Probe.of("cnn", _bundle(), budget)


# --- the probe ---

def test_a_net_within_the_budget_passes():
    assert _probe().skip(SMALL) is None


def test_a_family_is_held_to_its_own_limits_in_a_space_across_families():
    cnn_own = {"max_params": 10_000_000, "max_mflops": 120.0}
    budget = Budget(max_params=50_000, max_mflops=40.0, by_family={"cnn": cnn_own})
    wide = {"family": "cnn", **{f"cnn.{k}": v for k, v in (("depth", 2), ("filters_1", 128), ("filters_2", 128),
                                                           ("dense_layers", 1), ("dense_1", 512))}}
    mixed = Probe.of(MIXED, _bundle(), budget)
    assert mixed.skip(wide) is None  # over the space's 50,000 parameters, within cnn's own limits
    assert mixed.skip({"family": "lenet", "lenet.dense_1": 120, "lenet.dense_2": 84}).kind == OVER_BUDGET
    assert budget.of_family("lenet") == Budget(50_000, 40.0)


def test_an_over_budget_net_is_skipped_with_the_note_the_trainable_would_write():
    skip = _probe().skip(WIDE)
    bundle = _bundle()
    model = build_model(TrialConfig.from_flat(WIDE, "cnn"), bundle, *bundle.normalisation())
    params, mflops = size_of(model, torch.zeros(1, 1, 28, 28))  # as the trainable counts it
    assert (skip.kind, skip.params, skip.mflops) == (OVER_BUDGET, params, pytest.approx(mflops))
    assert skip.note == f"over budget: {BUDGET.exceeded(params, mflops)}"
    assert skip.note.endswith("(limits --max-params 50,000, --max-mflops 40)")


def test_a_net_pooled_to_nothing_is_infeasible():
    assert _probe().skip(POOLED_AWAY) == Skip(INFEASIBLE, "block 3: the feature map shrinks to nothing")


def test_a_config_that_fails_in_a_way_the_probe_does_not_know_goes_to_the_trial():
    assert _probe().skip({**SMALL, "lr": -1.0}) is None  # TrainSettings refuses it: the trial's error, as before


def test_a_transfer_net_is_probed_without_its_pretrained_weights(monkeypatch):
    from digitsearch.models import transfer

    monkeypatch.setattr(transfer, "ensure_imagenet_weights", lambda *a, **k: pytest.fail("weights read in the driver"))
    probe = Probe.of("transfer", _bundle(), Budget(max_params=1_000, max_mflops=1e6))
    skip = probe.skip({"transfer.backbone": "resnet18", "transfer.init": "imagenet"})
    assert skip is not None and skip.kind == OVER_BUDGET  # resnet18 has ~11M parameters, imagenet or not


def test_the_probe_keeps_one_example_of_each_split_not_the_data():
    big = _bundle(images=5_000)
    probe = Probe.of("cnn", big, BUDGET)
    assert (len(probe.data.train), len(probe.data.val), probe.data.test) == (1, 1, None)
    assert (probe.mean, probe.std) == big.normalisation()
    assert probe.data.model_args() == big.model_args()
    assert len(pickle.dumps(probe)) < 10_000  # the searcher Tune snapshots every second carries it


def test_budget_text():
    assert Budget(100, 5.0).exceeded(100, 5.0) is None
    assert Budget(100, 5.0).exceeded(101, 1.0) == "101 parameters, 1 MFLOPs per image (limits --max-params 100, " \
                                                 "--max-mflops 5)"


# --- the searcher's draws ---

# a space of the cnn family with one net of each kind: depth 1 of 16 filters trains, depth 1 of
# 128 filters is over BUDGET (187,658 parameters), depth 5 is pooled to nothing
TRAINS = {"cnn.depth": 1, "cnn.filters_1": 16}
OVER = {"cnn.depth": 1, "cnn.filters_1": 128}


def _space(trial) -> dict:
    depth = trial.suggest_categorical("cnn.depth", [1, 5])
    trial.suggest_categorical("cnn.filters_1", [16, 128])
    deeper = {f"cnn.filters_{k}": 16 for k in range(2, depth + 1)}
    return {"cnn.padding": "valid", "cnn.kernel": 5, "cnn.dense_layers": 0, **deeper}


def _net(config: dict) -> dict:
    return {name: config[name] for name in ("cnn.depth", "cnn.filters_1")}


def _searcher(probe: Probe | None, points=None, metric="best_val_acc", mode="max", seed=0, sampler=None):
    return ResumableOptunaSearch(space=_space, metric=metric, mode=mode, points_to_evaluate=points,
                                 sampler=sampler or optuna.samplers.RandomSampler(seed=seed), probe=probe)


def _complete(searcher, trial_id: str) -> None:
    searcher.on_trial_complete(trial_id, {"best_val_acc": 0.9, "val_acc": 0.9, "epoch": 1, "note": ""})


def _skipped(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if SKIPPED_ATTR in t.user_attrs]


def test_every_trial_tune_gets_can_be_trained_and_the_skipped_ones_are_told_to_the_study():
    searcher = _searcher(_probe())
    configs = [searcher.suggest(f"t{k}") for k in range(8)]
    assert all(_net(config) == TRAINS for config in configs)
    study = searcher._ot_study
    skipped = _skipped(study)
    assert len(skipped) >= 8, "three of the four nets cannot train: about 24 draws are skipped"
    for trial in skipped:
        assert (trial.state, trial.value, trial.constraints) == (COMPLETE, 0.0, {UNUSABLE: 1.0})
        assert TUNE_TRIAL_ATTR not in trial.user_attrs  # no Tune trial, no leaderboard row
        kind = f"{INFEASIBLE}: block 3:" if trial.params["cnn.depth"] == 5 else f"{OVER_BUDGET}: 187,658 parameters"
        assert trial.user_attrs[SKIPPED_ATTR].startswith(kind)
    for k in range(8):
        _complete(searcher, f"t{k}")
    assert sorted(t.user_attrs[TUNE_TRIAL_ATTR] for t in ran_trials(study)) == [f"t{k}" for k in range(8)]
    assert len(study.get_trials()) == 8 + len(skipped)


def test_tpe_learns_from_the_skipped_configs_to_avoid_them():
    searcher = _searcher(_probe(), sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for k in range(20):
        searcher.suggest(f"t{k}")
        _complete(searcher, f"t{k}")
    study = searcher._ot_study
    draws = sorted(study.get_trials(), key=lambda t: t.number)
    half = len(draws) // 2
    early, late = (sum(SKIPPED_ATTR in t.user_attrs for t in part) for part in (draws[:half], draws[half:]))
    assert late < early, (early, late)  # the constraint tells TPE where nothing trains


def test_a_starting_point_is_never_skipped():
    searcher = _searcher(_probe(), points=[OVER, {"cnn.depth": 5, "cnn.filters_1": 16}])
    assert _net(searcher.suggest("start1")) == OVER  # the trainable records it as over budget, as before
    assert _net(searcher.suggest("start2")) == {"cnn.depth": 5, "cnn.filters_1": 16}
    assert _skipped(searcher._ot_study) == []


def test_when_every_draw_fails_the_last_goes_to_tune():
    searcher = _searcher(_probe(Budget(max_params=1, max_mflops=1e-9)))
    config = searcher.suggest("t0")
    study = searcher._ot_study
    assert len(_skipped(study)) == MAX_DRAWS - 1
    assert "cnn.depth" in config  # the trainable records it as unusable
    running = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert [t.user_attrs[TUNE_TRIAL_ATTR] for t in running] == ["t0"]


def test_without_a_probe_nothing_is_skipped():
    searcher = _searcher(None)
    assert any(_net(searcher.suggest(f"t{k}")) != TRAINS for k in range(8))
    assert _skipped(searcher._ot_study) == []


def test_a_searcher_pickled_before_the_probe_existed_skips_nothing():
    """--resume of an older experiment: Ray unpickles its searcher without a probe (the class's None)."""
    old = _searcher(_probe())
    del old.__dict__["probe"]
    assert any(_net(old.suggest(f"t{k}")) != TRAINS for k in range(8))
    assert _skipped(old._ot_study) == []


def test_a_restored_searcher_keeps_its_probe(tmp_path):
    live = _searcher(_probe())
    live.save(str(tmp_path / "searcher.pkl"))  # as Tune snapshots it
    restored = _searcher(None)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert (restored.probe.family, restored.probe.budget) == ("cnn", BUDGET)
    assert all(_net(restored.suggest(f"t{k}")) == TRAINS for k in range(4))


def test_a_multi_objective_study_is_told_the_size_it_measured_and_the_worst_for_the_rest():
    searcher = _searcher(_probe(), metric=["best_val_acc", "params", "latency_ms"], mode=["max", "min", "min"])
    for k in range(4):
        searcher.suggest(f"t{k}")
    skipped = _skipped(searcher._ot_study)
    assert {t.params["cnn.depth"] for t in skipped} == {1, 5}
    for trial in skipped:
        accuracy, params, latency = trial.values
        assert (accuracy, latency, trial.constraints) == (0.0, float("inf"), {UNUSABLE: 1.0})
        # a net that never built has no size: the worst there is
        assert params == (float("inf") if trial.params["cnn.depth"] == 5 else 187_658)


# --- the run log's line ---

def _study_with(notes: list[str]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for note in notes:
        trial = study.ask()
        trial.set_user_attr(SKIPPED_ATTR, note)
        study.tell(trial, 0.0)
    trial = study.ask()
    trial.set_user_attr(TUNE_TRIAL_ATTR, "a")
    study.tell(trial, 0.9)
    return study


def test_the_run_log_says_how_many_were_skipped_and_why():
    notes = ["over budget: 3,365,770 parameters, 66 MFLOPs per image (limits ...)"] * 9 + \
            ["infeasible: block 3: the feature map shrinks to nothing", "infeasible: block 4: the feature map shrinks "
             "to nothing", "infeasible: stage 2: the feature map shrinks to nothing"]
    assert skipped_summary(_study_with(notes)) == \
        "skipped 12 configs before training: 9 over budget, 3 infeasible (the feature map shrinks to nothing)"
    assert skipped_summary(_study_with(notes[:1])) == "skipped 1 config before training: 1 over budget"
    assert skipped_summary(_study_with([])) is None
