"""The kill-window race of search.reconcile: a trial that started and ended inside the second
between Tune's last snapshot and a SIGKILLed driver (a ghost) is in the ledger, the study and
its own folder, but not in the state Tune restores. It keeps its leaderboard row and counts
toward its round's trials, so `--resume` runs no trial more than the round asked for."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search import Searcher

from digitsearch.search.reconcile import TUNE_TRIAL_ATTR, ResumableOptunaSearch, ran_trials
from digitsearch.search.rounds import load_results
from digitsearch.store import leaderboard

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(trial):
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)


def _searcher(storage: str, round_trials: int | None) -> ResumableOptunaSearch:
    return ResumableOptunaSearch(space=_space, metric="best_val_acc", mode="max",
                                 storage=optuna.storages.RDBStorage(storage), study_name="ghosts",
                                 sampler=optuna.samplers.RandomSampler(seed=0), max_epochs=1,
                                 round_trials=round_trials)


def _killed_after_a_ghost(tmp_path, round_trials: int | None) -> str:
    """Tune's snapshot holds a (ended) and b (running); then b ended, and c started and ended
    before the next snapshot; then the driver died."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    live = _searcher(storage, round_trials)
    for trial_id in ("a", "b"):
        live.suggest(trial_id)
    live.on_trial_complete("a", {"best_val_acc": 0.5, "epoch": 1})
    live.save(str(tmp_path / "searcher.pkl"))  # Tune's snapshot
    live.on_trial_complete("b", {"best_val_acc": 0.6, "epoch": 1})
    live.suggest("c")
    live.on_trial_complete("c", {"best_val_acc": 0.0, "epoch": 0, "note": "infeasible: no net"})  # at once
    return storage


def test_a_ghost_counts_toward_its_rounds_trials(tmp_path):
    storage = _killed_after_a_ghost(tmp_path, round_trials=4)
    restored = _searcher(storage, round_trials=None)  # what the round's searcher was is in the snapshot
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.round_trials == 4 and restored.ghosts == (2,) and restored.told_before == {"a", "b"}
    assert isinstance(restored.suggest("d"), dict)  # a, b, c ran: one trial is left
    restored.on_trial_complete("d", {"best_val_acc": 0.7, "epoch": 1})
    assert restored.suggest("e") == Searcher.FINISHED  # not a fifth
    study = optuna.load_study(study_name="ghosts", storage=storage)
    assert sorted(t.user_attrs[TUNE_TRIAL_ATTR] for t in ran_trials(study)) == ["a", "b", "c", "d"]


def test_without_a_ghost_or_a_trial_count_the_round_goes_on(tmp_path):
    storage = _killed_after_a_ghost(tmp_path, round_trials=None)  # a time limit's round: no count
    restored = _searcher(storage, round_trials=None)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.ghosts == (2,)
    assert all(isinstance(restored.suggest(trial_id), dict) for trial_id in "defg")


def test_the_trials_of_an_earlier_round_are_no_ghosts(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = _searcher(storage, round_trials=2)
    for trial_id in ("a", "b"):
        first.suggest(trial_id)
        first.on_trial_complete(trial_id, {"best_val_acc": 0.5, "epoch": 1})
    second = _searcher(storage, round_trials=2)  # --add-trials 2
    second.suggest("c")
    second.save(str(tmp_path / "searcher.pkl"))
    restored = _searcher(storage, round_trials=2)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.ghosts == () and isinstance(restored.suggest("d"), dict)


@pytest.fixture(scope="module")
def a_round_and_a_ghost(tmp_path_factory):
    """A real Tune round of two trials, and beside it the folder of a trial its state never
    held (written by another Tuner and moved in: what the race leaves)."""
    import ray

    root = tmp_path_factory.mktemp("ghost")

    def trial(config):
        tune.report({"val_acc": config["acc"], "best_val_acc": config["acc"], "epoch": 1})

    def run(name: str, accs: list[float]):
        # the loggers a search's rounds add (search.rounds): result.json is what a folder is read from
        tune.Tuner(trial, param_space={"acc": tune.grid_search(accs)},
                   tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: f"trial_{t.trial_id}"),
                   run_config=tune.RunConfig(storage_path=str(root), name=name, verbose=0,
                                             callbacks=[CSVLoggerCallback(), JsonLoggerCallback()])).fit()

    ours = not ray.is_initialized()  # a Ray this process runs already (another file's searches) is kept
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # as search.rounds sets it
        if ours:
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        try:
            run("tune", [0.5, 0.6])
            run("other", [0.9])
        finally:
            if ours:
                ray.shutdown()
    ghost = next((root / "other").glob("trial_*"))
    ghost.rename(root / "tune" / ghost.name)
    return {"tune_root": str(root), "rounds": [{"dir": "tune", "trials": 3}]}, ghost.name.removeprefix("trial_")


@pytest.mark.extended
@pytest.mark.e2e
@pytest.mark.parametrize("storage", ["path", "uri"])  # a local disk; --storage file://... as on a cluster
def test_the_ghosts_row_is_read_from_its_folder(a_round_and_a_ghost, storage):
    meta, ghost = a_round_and_a_ghost
    if storage == "uri":
        meta = {**meta, "tune_root": Path(meta["tune_root"]).as_uri()}
    tune_held = {leaderboard.trial_row_id(r) for r in load_results(meta)}
    assert len(tune_held) == 2 and ghost not in tune_held
    results = load_results(meta, ended=tune_held | {ghost})  # the ledger has all three
    by_id = {leaderboard.trial_row_id(r): r for r in results}
    assert set(by_id) == tune_held | {ghost}
    assert by_id[ghost].metrics["val_acc"] == 0.9 and by_id[ghost].config == {"acc": 0.9}


@pytest.mark.extended
@pytest.mark.e2e
def test_a_folder_the_ledger_does_not_have_stays_out(a_round_and_a_ghost):
    meta, ghost = a_round_and_a_ghost  # a trial that had not ended: its study trial is an orphan, rerun
    assert ghost not in {leaderboard.trial_row_id(r) for r in load_results(meta, ended={ghost + "x"})}
