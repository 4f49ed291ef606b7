"""Every private Ray/Optuna API and every filter on Ray's log text that digitsearch relies on,
pinned by its behaviour here, so that an upgrade past pyproject's upper bounds fails loudly
in these tests instead of quietly in a user's search. No search runs here (seconds).

Pinned: OptunaSearch's `_ot_trials`/`_ot_study` and its restore() (search.reconcile);
FrozenTrial's `_trial_id` and optuna.trial.Trial(study, id) (reconcile, resume.fail_orphans);
Tuner's `_local_tuner` run config and Ray Client's `_remote_tuner` (search.rounds); the log
lines TrialFailureFilter and TransientSyncErrorFilter drop (search.session); the environment
variables search.rounds sets for Tune and the worker niceness session.connect sets; the
text of Optuna's warning about a step reported twice; Tune's default runtime env for trial
actors (session.unpin_trial_actors) and the auth caches local_ray.present_token resets.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os

import optuna
import pytest
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from digitsearch.search import local_ray, session
from digitsearch.search.reconcile import ORPHAN_ATTR, TUNE_TRIAL_ATTR, ResumableOptunaSearch, ran_trials
from digitsearch.store import kept_ray

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(trial):
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)


def _searcher(cls, storage: str):
    return cls(space=_space, metric="best_val_acc", mode="max", storage=optuna.storages.RDBStorage(storage),
               study_name="pins", sampler=optuna.samplers.RandomSampler(seed=0))


def _snapshot_older_than_the_study(tmp_path):
    """What a driver killed between a trial's end and Tune's next snapshot leaves: the
    searcher's saved state with trial b running; then b ended and c was asked for."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    live = _searcher(ResumableOptunaSearch, storage)
    for trial_id in ("a", "b"):
        live.suggest(trial_id)
    live.on_trial_complete("a", {"best_val_acc": 0.5})
    live.save(str(tmp_path / "searcher.pkl"))  # Tune's snapshot
    live.on_trial_result("b", {"best_val_acc": 0.6, "training_iteration": 1})
    live.on_trial_complete("b", {"best_val_acc": 0.6})  # the ledger and the study: b ended
    c_params = live.suggest("c")  # asked for, then the driver died
    return storage, c_params


def test_plain_optunasearch_restored_from_an_older_snapshot_reports_to_a_finished_trial(tmp_path):
    # the failure the reconciliation exists for: if Ray ever reconciles itself, this fails
    storage, _ = _snapshot_older_than_the_study(tmp_path)
    restored = _searcher(OptunaSearch, storage)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert set(restored._ot_trials) == {"a", "b"}
    assert isinstance(restored._ot_study, optuna.Study)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        restored.on_trial_result("b", {"best_val_acc": 0.6, "training_iteration": 2})


def test_the_restored_searcher_tells_an_ended_trial_nothing_and_gives_the_orphan_to_the_next(tmp_path):
    storage, c_params = _snapshot_older_than_the_study(tmp_path)
    restored = _searcher(ResumableOptunaSearch, storage)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.told_before == {"a", "b"} and len(restored.orphans) == 1  # a: in the snapshot too
    restored.on_trial_result("b", {"best_val_acc": 0.7, "training_iteration": 2})  # Tune ran b's last epochs again
    restored.on_trial_complete("b", {"best_val_acc": 0.7})
    assert restored.suggest("d") == c_params  # the orphan's sampled parameters, under Tune's new id
    restored.on_trial_complete("d", {"best_val_acc": 0.8})
    study = optuna.load_study(study_name="pins", storage=storage)
    assert [(t.user_attrs[TUNE_TRIAL_ATTR], t.value) for t in study.trials] == [("a", 0.5), ("b", 0.6), ("d", 0.8)]
    assert len(ran_trials(study)) == 3


def test_a_leftover_orphan_is_failed_and_counts_for_no_row(tmp_path):
    from digitsearch.search.resume import fail_orphans

    folder = tmp_path / "exp"  # an experiment folder of before experiment.json named its study
    folder.mkdir()
    study = optuna.create_study(study_name="exp", storage=f"sqlite:///{folder / 'optuna.db'}")
    ran = study.ask()
    ran.set_user_attr(TUNE_TRIAL_ATTR, "a")
    study.tell(ran, 0.9)
    study.ask()  # asked for by the killed driver; the round ended before a trial took it
    fail_orphans(folder)
    orphan = optuna.load_study(study_name="exp", storage=study._storage).trials[1]
    assert orphan.state == optuna.trial.TrialState.FAIL and orphan.user_attrs[ORPHAN_ATTR] is True
    assert [t.number for t in ran_trials(study)] == [0]


def test_the_restored_tuners_run_config_is_what_fit_runs_with(tmp_path):
    # rounds._restored_tuner swaps the pickled callbacks for this driver's through this attribute
    tuner = tune.Tuner(lambda config: None, run_config=tune.RunConfig(storage_path=str(tmp_path), name="x"))
    ours = [tune.Callback()]
    tuner._local_tuner.get_run_config().callbacks = ours
    assert tuner._local_tuner._get_tune_run_arguments(lambda config: None)["callbacks"] is ours


def test_under_ray_client_the_tuner_is_an_actor_and_the_check_is_rays_own():
    # no _local_tuner there: rounds._restored_tuner refuses --resume with the same check Tune makes
    import ray

    assert "ray.util.client.ray.is_connected()" in inspect.getsource(tune.Tuner.__init__)
    assert "self._remote_tuner = " in inspect.getsource(tune.Tuner.restore.__func__) + inspect.getsource(
        tune.Tuner.__init__)
    assert ray.util.client.ray.is_connected() is False


def _record(logger: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.ERROR, __file__, 1, message, args, None)


def test_the_trial_failure_lines_the_filter_drops_are_the_ones_ray_logs():
    controller = importlib.import_module("ray.tune.execution.tune_controller")
    run = importlib.import_module("ray.tune.tune")
    assert (controller.logger.name, run.logger.name) == ("ray.tune.execution.tune_controller", "ray.tune.tune")
    assert 'logger.error(f"Trial task failed for trial {trial}", exc_info=exception)' in inspect.getsource(controller)
    assert 'logger.error("Trials did not complete: %s", incomplete_trials)' in inspect.getsource(run)
    drop = session.TrialFailureFilter()
    assert not drop.filter(_record(controller.logger.name, "Trial task failed for trial train_trial_1a2b"))
    assert not drop.filter(_record(run.logger.name, "Trials did not complete: %s", ["train_trial_1a2b"]))
    assert drop.filter(_record(controller.logger.name, "Experiment state snapshotting took 12 s"))


def test_rays_temporary_state_files_are_the_ones_the_sync_filter_knows(tmp_path, monkeypatch):
    from ray.tune.utils import util

    written = []
    searcher = _searcher(ResumableOptunaSearch, f"sqlite:///{tmp_path / 'optuna.db'}")
    monkeypatch.setattr(searcher, "save", written.append)
    searcher.save_to_dir(str(tmp_path))  # the searcher's state: .<uuid4>-tmp-searcher-state-*.pkl
    monkeypatch.setattr(util.os, "replace", lambda source, target: written.append(source))
    util._atomic_save({}, str(tmp_path), "search_gen_state-x.json", "tmp-search_gen_state-x.json")
    assert len(written) == 2 and all(session._RAY_TMP_FILE.search(path) for path in written), written


def test_the_environment_variables_set_for_tune_are_read_by_ray(monkeypatch):
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experimental.output import get_air_verbosity
    from ray.tune.logger import CSVLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    assert 'os.getenv("TUNE_GLOBAL_CHECKPOINT_S", "auto")' in inspect.getsource(TuneController.__init__)
    monkeypatch.setitem(os.environ, "RAY_AIR_NEW_OUTPUT", "0")
    assert get_air_verbosity(0) is None  # our SearchProgress, not Ray's new output
    monkeypatch.setitem(os.environ, "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    assert not any(isinstance(c, CSVLoggerCallback) for c in _create_default_callbacks([]))
    monkeypatch.setitem(os.environ, "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    assert any(isinstance(c, CSVLoggerCallback) for c in _create_default_callbacks([]))


def test_a_step_reported_again_after_a_restart_keeps_its_first_value_and_says_nothing(tmp_path):
    import warnings

    from digitsearch.search.reconcile import REREPORT_WARNING

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, storage)
    searcher.suggest("a")
    searcher.on_trial_result("a", {"best_val_acc": 0.5, "training_iteration": 1})
    with pytest.warns(UserWarning, match=REREPORT_WARNING):  # Optuna's own words, which the searcher hides
        searcher._ot_trials["a"].report(0.9, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        searcher.on_trial_result("a", {"best_val_acc": 0.6, "training_iteration": 1})  # restarted: step 1 again
    study = optuna.load_study(study_name="pins", storage=storage)
    assert study.trials[0].intermediate_values == {1: 0.5}


def _worker_niceness(start_ray: str) -> tuple[int, int]:
    """(the driver's niceness, a Ray worker's) in a fresh process that starts Ray with `start_ray`."""
    import subprocess
    import sys

    probe = f"import os, ray\nfrom digitsearch.search import session\n{start_ray}\n" \
            "print(os.nice(0), ray.get(ray.remote(lambda: os.nice(0)).remote()))\n"
    env = {k: v for k, v in os.environ.items() if k != local_ray.WORKER_NICENESS}
    env[kept_ray.STATE_FILE_ENV] = kept_ray.NOT_KEPT  # a Ray of its own, not the suite's kept-up one
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    driver, worker = (int(v) for v in out.stdout.split()[-2:])
    return driver, worker


@pytest.mark.extended
@pytest.mark.e2e
def test_a_local_rays_workers_run_at_the_commands_priority():
    """Ray starts workers 15 nicer than the command (pinned: the reason for the setting);
    session.connect's private local Ray sets RAY_worker_niceness=0, so trials run at the
    command's own priority."""
    from ray._private import ray_constants

    assert ray_constants.RAY_WORKER_NICENESS == local_ray.WORKER_NICENESS
    driver, worker = _worker_niceness("ray.init(include_dashboard=False)")
    assert worker == min(driver + 15, 19)
    driver, worker = _worker_niceness("session.connect(None, verbose=False)")
    assert worker == driver


def test_tunes_trial_actors_runtime_env_is_what_unpin_removes():
    """Tune gives each trial actor runtime_env env_vars from DEFAULT_ENV_VARS (PL_DISABLE_FORK);
    any runtime env keeps an actor off the workers Ray prestarted: session.unpin_trial_actors
    empties it, local_ray.LOCAL_RAY_ENV sets the variable for every worker instead."""
    from ray.tune.execution import class_cache

    saved = dict(class_cache.DEFAULT_ENV_VARS)
    try:
        assert saved == {"PL_DISABLE_FORK": "1"} or saved == {}
        assert local_ray.LOCAL_RAY_ENV["PL_DISABLE_FORK"] == "1"
        session.unpin_trial_actors()
        assert class_cache.DEFAULT_ENV_VARS == {}
        assert "DEFAULT_ENV_VARS.copy()" in inspect.getsource(class_cache._ActorClassCache.get)
    finally:
        class_cache.DEFAULT_ENV_VARS.update(saved)


def test_rays_auth_caches_can_be_reread():
    """local_ray.present_token: Ray's Config and token cache, read again from the environment."""
    from ray._raylet import AuthenticationTokenLoader, Config

    assert callable(Config.initialize) and callable(AuthenticationTokenLoader.instance().reset_cache)
