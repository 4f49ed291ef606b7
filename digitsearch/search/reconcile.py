"""The searcher of a restored round, reconciled with what outlived the killed driver.

Three records outlive a SIGKILLed driver, written at different moments:
  - the ledger (finished.txt) and the Optuna study (optuna.db): written the moment a trial ends;
  - Tune's experiment snapshot (trial states, and OptunaSearch's pickled state): at most once
    a second (TUNE_GLOBAL_CHECKPOINT_S), then copied to storage.
A kill in between leaves a snapshot up to a second older than the ledger and the study: Tune
restores a trial that had already ended as unfinished and runs its last epochs again (from
its best-epoch checkpoint, which brings its files in storage up to date too). Ray's
OptunaSearch would report those epochs to a study trial that is already COMPLETE, and
Optuna refuses (UpdateFinishedTrialError, a traceback that ends the resume). A trial the
searcher asked Optuna for just before the kill, that the snapshot never saw, stays RUNNING.
And a trial that started and ended inside that second (a trial the trainable could not use
ends at once) is in the ledger, the study and its own folder, but Tune restores no trace of
it: a ghost. Tune's count of the round's trials is the snapshot's, so it would start one
trial more than the round asked for.

`ResumableOptunaSearch` reconciles both when Tune restores it:
  - a Tune trial whose study trial had already finished is told nothing more: the study keeps
    its first outcome, as the ledger does (a trial that ended twice counts once);
  - a study trial RUNNING but unknown to the snapshot (an orphan) is handed to the next trial
    Tune asks for: it runs with the parameters already sampled, so the study gains no trial
    that never ran. Orphans left over when the round has all its trials are failed afterwards
    (resume.fail_orphans) and marked ORPHAN_ATTR;
  - a ghost counts toward the round's trials: once the trials Tune knows and the ghosts make
    `round_trials`, the searcher says FINISHED. Its leaderboard row is read from its folder
    (rounds.load_results, from the ledger).

What counts, then: a study trial with a TUNE_TRIAL_ATTR and without ORPHAN_ATTR is one
leaderboard row, and each leaderboard row is one such study trial (`ran_trials`), whether it
ended COMPLETE, PRUNED or FAIL. A config the searcher skipped before training (it does not
build, or is over the parameter/MFLOP budget: search/feasible.py) is a study trial too, so
that TPE learns from it, but never a Tune trial: it has SKIPPED_ATTR and no TUNE_TRIAL_ATTR,
so it is no leaderboard row, no trial of the round, no ghost; the run log counts them in one line.

What the study is told (`ending`), so that TPE learns from a trial only what it measured:
  - each epoch's own val_acc at step = epoch (what ASHA compares at its rungs), so that
    optuna-dashboard draws every trial's curve;
  - a trial that ran max_epochs is COMPLETE with its best val_acc (the leaderboard's);
  - one that ended before, with no note, a "time limit" note or an "at chance" note (ASHA
    stopped it, it stopped at the search's time limit, or its first epoch left it at chance:
    search/chance.py), is PRUNED: TPE ranks pruned trials below every complete one,
    by how far they got and then their last val_acc, so one epoch of a config is compared
    with one epoch of another, not with a full run;
  - one the trainable could not use (a note: infeasible, over budget, diverged, out of memory)
    stays COMPLETE with value 0, marked infeasible by an Optuna constraint (UNUSABLE), as does
    a config the searcher skipped before training: TPE
    then ranks it below the pruned ones too, yet still learns to avoid its region. FAIL would
    hide it from TPE altogether, which would keep sampling where nothing can be built; and a
    plain COMPLETE 0 would, while few trials have run every epoch, rank above every pruned one.

Ray and Optuna internals used here (each pinned by tests/test_ray_pins.py): OptunaSearch's
`_ot_trials` (Tune trial id -> optuna.Trial) and `_ot_study`, restore() replacing the
searcher's __dict__, FrozenTrial's `_trial_id`, the optuna.trial.Trial(study, id) constructor, and
the text of Optuna's warning about a step reported twice.
"""
from __future__ import annotations

import warnings

import optuna
from ray.air.constants import TRAINING_ITERATION
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from digitsearch.search.chance import AT_CHANCE_NOTE
from digitsearch.search.deadline import TIME_LIMIT_NOTE
from digitsearch.search.feasible import SKIPPED_ATTR, Probe, Skip
from digitsearch.search.mutation import PARENT_ATTR, TUNE_TRIAL_ATTR, note_parents, steps_in

ORPHAN_ATTR = "orphan"  # user attr: asked for by a killed driver, never run by Tune
REREPORT_WARNING = "The reported value is ignored because this"  # Optuna's text (pinned in test_ray_pins)
UNUSABLE = "unusable"  # Optuna constraint (1.0: violated) of a trial the trainable could not use
LATENCY = "latency_ms"  # Optuna constraint under --max-latency-ms: the trial's latency less the limit
# the notes of a trial that trained and was then stopped: it measured something, as an ASHA stop does
MEASURED_NOTES = (TIME_LIMIT_NOTE, AT_CHANCE_NOTE)
# draws of a config for one Tune trial while the probe skips them (search/feasible.py); the last
# draw goes to Tune unchecked, whose trial records it as unusable: a space where nearly nothing
# builds still runs its trials, never an endless loop in the driver
MAX_DRAWS = 50


class ResumableOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, safe to restore from a snapshot older than its study, telling the
    study each trial's epochs and how it ended (the module's docstring).

    `max_epochs`: the search's; a trial that ended before them is PRUNED. None (a searcher
    pickled before it existed, restored by `--resume`): every trial that reports is COMPLETE.
    `round_trials`: how many trials this round runs (None: as many as a time limit lets it).
    `probe`: checks each sampled config before it becomes a Tune trial; a config it skips is
    told to the study and drawn again (search/feasible.py). None: every config goes to Tune.
    """

    # the class's: what a searcher unpickled from an older round reads
    max_epochs: int | None = None
    round_trials: int | None = None
    max_latency_ms: float | None = None
    ghosts: tuple[int, ...] = ()
    probe: Probe | None = None

    def __init__(self, *args, max_epochs: int | None = None, round_trials: int | None = None,
                 max_latency_ms: float | None = None, probe: Probe | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs, self.round_trials, self.max_latency_ms = max_epochs, round_trials, max_latency_ms
        self.probe = probe
        self.told_before: set[str] = set()  # Tune trial ids whose study trial had ended before this driver
        self.orphans: list[int] = []  # study trial numbers RUNNING but unknown to the restored snapshot
        self.ghosts = ()  # study trial numbers that ran and ended after the restored snapshot

    def suggest(self, trial_id: str):
        if trial_id not in self._ot_trials and self._round_has_all_its_trials():
            return Searcher.FINISHED  # the ghosts ran the round's last trials before the kill
        if trial_id not in self._ot_trials and self.orphans:
            self._ot_trials[trial_id] = _running_trial(self._ot_study, self.orphans.pop(0))
        config = self._buildable_suggestion(trial_id)
        if trial_id in self._ot_trials:
            live = self._ot_trials[trial_id]
            live.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
            parent = self._ot_study._storage.get_trial_user_attrs(live._trial_id).get(PARENT_ATTR)
            if parent:  # a local step: ASHA judges it against its parent (search/schedulers.py)
                note_parents({trial_id: parent})
        return config

    def _buildable_suggestion(self, trial_id: str):
        """Ray's suggestion for `trial_id`, drawn again while the probe skips it; the last of
        MAX_DRAWS goes to Tune unchecked. Only a config sampled here is checked: a starting
        point (an enqueued trial) and an orphan handed on run as they are, and the trainable
        records them as it always has."""
        for _ in range(MAX_DRAWS - 1):
            sampled_here = trial_id not in self._ot_trials
            config = super().suggest(trial_id)
            checked = self.probe is not None and sampled_here and not self._enqueued(trial_id)
            skip = self.probe.skip(config) if checked else None
            if skip is None:
                return config
            self._tell_skipped(trial_id, skip)
        return super().suggest(trial_id)

    def _enqueued(self, trial_id: str) -> bool:
        """Whether the trial's config was enqueued (a starting point) rather than sampled."""
        live = self._ot_trials[trial_id]
        return "fixed_params" in self._ot_study._storage.get_trial_system_attrs(live._trial_id)

    def _tell_skipped(self, trial_id: str, skip: Skip) -> None:
        """A skipped config's study trial: COMPLETE with value 0 and infeasible by its UNUSABLE
        constraint, as a trial the trainable could not use is told (`ending`), so that TPE
        learns the region; its note in SKIPPED_ATTR. It has no TUNE_TRIAL_ATTR: it is no
        leaderboard row and no trial of the round (`ran_trials`, `reconcile`)."""
        live = self._ot_trials.pop(trial_id)
        live.set_user_attr(SKIPPED_ATTR, skip.note)
        live.set_constraint(UNUSABLE, 1.0)
        if self.multi_objective:  # the costs it measured (an over-budget net's size), the worst for the rest
            measured = self._with_every_value({"params": skip.params, "mflops": skip.mflops})
            self._ot_study.tell(live, [measured[metric] for metric in self.metric])
        else:
            self._ot_study.tell(live, 0.0)

    def _round_has_all_its_trials(self) -> bool:
        return bool(self.ghosts) and self.round_trials is not None and \
            len(self._ot_trials) + len(self.ghosts) >= self.round_trials

    def on_trial_result(self, trial_id: str, result: dict):
        if trial_id in self.told_before:
            return
        if trial_id in self._completed_trials:
            return super().on_trial_result(trial_id, result)  # Ray's warning about a result after the end
        self._report_epoch(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self.told_before:
            return
        if result and trial_id not in self._completed_trials:
            # Tune hands a trial's last result (the epoch ASHA stopped it at, or its last)
            # to on_trial_result only when the trial goes on: here it comes for the first time
            self._report_epoch(trial_id, result)
            how = ending(result, self.max_epochs)
            if how == "pruned":
                self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
                self._completed_trials.add(trial_id)
                return
            if how == "unusable":
                self._ot_trials[trial_id].set_constraint(UNUSABLE, 1.0)
                result = self._with_every_value(result)
            self._constrain_latency(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)  # COMPLETE (or FAIL on an error)

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.metric, list)  # Ray's OptunaSearch: lists of metrics and modes

    def _with_every_value(self, result: dict) -> dict:
        """An unusable trial's result with a value for every objective: the cost it never measured
        (an infeasible net has no latency) as the worst there is. Its UNUSABLE constraint already
        puts it below every feasible trial; Optuna refuses a missing value."""
        if not self.multi_objective:
            return result
        worst = {metric: float("inf") if mode == "min" else 0.0 for metric, mode in zip(self.metric, self.mode)}
        return {**worst, **{k: v for k, v in result.items() if v is not None}}

    def _constrain_latency(self, trial_id: str, result: dict) -> None:
        """--max-latency-ms as an Optuna constraint (feasible at 0 or below): TPE learns where the
        slow nets are. The trainable has already stopped such a trial before its first epoch."""
        latency = result.get(LATENCY)
        if self.max_latency_ms is not None and latency is not None:
            self._ot_trials[trial_id].set_constraint(LATENCY, float(latency) - self.max_latency_ms)

    def _report_epoch(self, trial_id: str, result: dict) -> None:
        """The epoch's own val_acc at step = epoch (the trainable's epoch survives a restart
        from a checkpoint). A result without them (Ray's own shape, as in test_ray_pins) gives
        Ray's metric at Tune's iteration; an unusable trial's 0 measured nothing, and is not told.
        A multi-objective study takes no intermediate values (Optuna): its epochs are in Tune's
        results and TensorBoard only."""
        if ending(result, None) == "unusable" or self.multi_objective:
            return
        step = result.get("epoch", result.get(TRAINING_ITERATION))
        value = result.get("val_acc", result.get(self.metric))
        if step is None or value is None or step < 1:
            return
        with warnings.catch_warnings():
            # a trial restarted from its best-epoch checkpoint reports the epochs after it again;
            # the study keeps each step's first value, and Optuna's warning per step is noise
            warnings.filterwarnings("ignore", message=REREPORT_WARNING)
            self._ot_trials[trial_id].report(float(value), int(step))

    def restore(self, checkpoint_path: str):
        super().restore(checkpoint_path)  # the snapshot's state: up to a second older than the study
        self.told_before, self.orphans, self.ghosts = reconcile(self._ot_study, self._ot_trials)
        note_parents({trial_id: parent for trial_id, (parent, _) in steps_in(self._ot_study).items()})


def ending(result: dict, max_epochs: int | None) -> str:
    """How a trial whose last result is `result` ended, for the study: "unusable" (the
    trainable's note says why: infeasible, over budget, diverged, out of memory), "pruned"
    (before max_epochs, stopped by ASHA, at the time limit or at chance) or "complete"."""
    note = str(result.get("note") or "")
    if note and not note.startswith(MEASURED_NOTES):
        return "unusable"
    if max_epochs is not None and int(result.get("epoch", max_epochs)) < max_epochs:
        return "pruned"
    return "complete"


def reconcile(study, known: dict) -> tuple[set[str], list[int], tuple[int, ...]]:
    """Read from the study itself, against `known` (Tune trial id -> optuna.Trial, the restored
    snapshot's trials of this round): the Tune trial ids whose study trial has finished; the
    numbers of RUNNING study trials no known trial has (orphans); and the numbers of study
    trials a Tune trial ran and ended after the snapshot (ghosts). A ghost is newer than every
    known trial, which tells it from the trials of earlier rounds; with no known trial (a kill
    within the round's first second) none is counted."""
    trials = study.get_trials(deepcopy=False)
    states = {trial.number: trial.state for trial in trials}
    finished = {tid for tid, trial in known.items() if states.get(trial.number, _UNKNOWN).is_finished()}
    numbers = {trial.number for trial in known.values()}
    orphans = sorted(n for n, state in states.items() if state == optuna.trial.TrialState.RUNNING and n not in numbers)
    newest = max(numbers, default=None)
    ghosts = tuple(t.number for t in trials if newest is not None and t.number > newest and t.state.is_finished()
                   and TUNE_TRIAL_ATTR in t.user_attrs and not t.user_attrs.get(ORPHAN_ATTR))
    return finished, orphans, ghosts


_UNKNOWN = optuna.trial.TrialState.WAITING  # not finished


def _running_trial(study, number: int) -> optuna.trial.Trial:
    # the live handle of an existing RUNNING trial; its suggest_* calls return the values it has
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return optuna.trial.Trial(study, frozen._trial_id)


def mark_orphan(study, frozen) -> None:
    """Fail a RUNNING study trial that no Tune trial ran, marked so that it counts for no row."""
    live = optuna.trial.Trial(study, frozen._trial_id)
    live.set_user_attr(ORPHAN_ATTR, True)
    study.tell(live, state=optuna.trial.TrialState.FAIL)


def ran_trials(study) -> list:
    """The study's finished trials (COMPLETE, PRUNED or FAIL) that a Tune trial ran: one per
    leaderboard row."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and TUNE_TRIAL_ATTR in t.user_attrs and not t.user_attrs.get(ORPHAN_ATTR)]
