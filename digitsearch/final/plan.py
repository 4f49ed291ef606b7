"""What a retrain will do, fixed before any data are loaded: the trial(s), their configs, their epochs.

`best --retrain` retrains the best trial (or `--trial`'s); `--ensemble K` the leaderboard's top K
distinct configs near the best (final.ranking), the places left over filled by the best config
under other seeds. Every option and trial is checked here, so a bad one costs a line, not a load.
A time limit fixes the epochs later, once an epoch's cost is measured (final.training.fit_to).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from digitsearch.core.config import TrialConfig
from digitsearch.errors import UserError
from digitsearch.final import formats, options, ranking
from digitsearch.store import experiments
from digitsearch.store.layout import final_dir
from digitsearch.store.leaderboard import NEAR_BEST, TRAINED_STATUSES
from digitsearch.store.trials import read_trial


@dataclass(frozen=True)
class Member:
    """One net to retrain: its trial (best.json's fields), its parsed config, its epochs, and how
    far its seed is from the experiment's (0: as a lone retrain of the trial; k: the k-th copy)."""

    trial: dict
    cfg: TrialConfig
    epochs: int
    reseed: int = 0


@dataclass(frozen=True)
class Plan:
    """What a retrain will do, fixed before any data are loaded (a time limit fixes the epochs later)."""

    folder: Path
    meta: dict
    members: tuple[Member, ...]  # best first
    exports: tuple[str, ...]
    out: Path
    tta: bool = False
    # under a time limit (final.training.fit_to): how many members the measured costs fit; the
    # others wait, each joining if the members before it leave it `waiting_epochs` or more
    planned: int | None = None  # None: every member
    waiting_epochs: int = 0

    @property
    def trial(self) -> dict:
        return self.members[0].trial

    @property
    def cfg(self) -> TrialConfig:
        return self.members[0].cfg

    @property
    def epochs(self) -> int:
        return self.members[0].epochs

    @property
    def plain(self) -> bool:
        """One net, no test-time views: model.pt is that net itself, as before ensembles existed."""
        return len(self.members) == 1 and not self.tta


def plan(folder: Path, epochs: int | None = None, exports: tuple[str, ...] = (), trial: str | None = None, *,
         ensemble: int = 1, tta: bool = False, time_limit_s: float | None = None,
         note: Callable[[str], None] = print) -> Plan:
    options.check(epochs, ensemble, tta, time_limit_s, trial)
    meta = experiments.read_meta(folder)
    options.check_task(meta.get("task"), ensemble, tta)
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1 (got {epochs})")
    exports = formats.validate(exports)
    formats.check_available(exports)
    chosen = _chosen_trials(folder, meta, trial, ensemble, note)
    members = tuple(_member(found, meta, epochs, reseed) for found, reseed in chosen)
    return Plan(folder, meta, members, exports, final_dir(folder, trial), tta)


def _chosen_trials(folder: Path, meta: dict, trial: str | None, count: int,
                   note: Callable[[str], None]) -> list[tuple[dict, int]]:
    """(trial, reseed) for each member, best first."""
    if trial:
        chosen = [read_trial(folder, trial)]
    else:
        best = experiments.read_best(folder)
        chosen = ranking.top_trials(folder, count) or [best]
        _say_pick(best, meta, chosen[0], note)
        if len(chosen) < count:
            note(_reseeded_note(count, chosen, ranking.margin(ranking.score(chosen[0]), ranking.val_images(meta))))
    for found in chosen:
        if found.get("status") not in (*TRAINED_STATUSES, None):  # best.json holds only trained trials
            why = f": {found['note']}" if found.get("note") else ""
            raise UserError(f"trial {found['trial_id']} ended as {found['status']}{why}; it has no trained epoch to "
                            f"retrain (`digitsearch best` names the best trial that has)")
    copies = [(chosen[0], k) for k in range(1, count - len(chosen) + 1)]
    return [(found, 0) for found in chosen] + copies


def _say_pick(best: dict, meta: dict, first: dict, note: Callable[[str], None]) -> None:
    """A line when the retrain's first trial is not `best` (best.json's, the best val_acc): its
    epochs around their best did better, or a starting point is tied with it."""
    if first["trial_id"] == best["trial_id"]:
        return
    lead, behind = ranking.score(first), ranking.score(best)
    if lead > behind + 1e-9:
        note(f"retrain: trial {first['trial_id']} goes before the leader {best['trial_id']}: its "
             f"{NEAR_BEST} epochs around its best averaged val_acc {lead:.4f} against {behind:.4f} "
             f"(best epochs {first['val_acc']:.4f} and {best['val_acc']:.4f}: a best epoch is one draw of a "
             "noisy curve)")
        return
    images = round(abs(behind - lead) * ranking.val_images(meta))
    note(f"retrain: trial {first['trial_id']} ({lead:.4f} around its best epoch), a starting point of the space, "
         f"goes before the leader {best['trial_id']} ({behind:.4f}): {images} validation image"
         f"{'s' * (images != 1)} apart is within the validation noise, and the space orders its starting points")


def _reseeded_note(count: int, chosen: list[dict], margin: float) -> str:
    best, others, copies = chosen[0], len(chosen) - 1, count - len(chosen)
    near = (f"{others} other trained config{'s' * (others != 1)} come{'s' * (others == 1)}"
            if others else "no other trained config comes")
    points = f"{margin * 100:.2g}"
    return (f"note: --ensemble {count}: {near} within {points} val point{'s' * (points != '1')} of the best "
            f"(trial {best['trial_id']}, val_acc {best['val_acc']:.4f}); {copies} member{'s' * (copies != 1)} "
            f"{'are' if copies != 1 else 'is'} that config again under another seed")


def _member(chosen: dict, meta: dict, epochs: int | None, reseed: int = 0) -> Member:
    """--epochs, else the epoch the trial peaked at, else the search's maximum."""
    epochs = epochs or int(chosen.get("best_epoch") or 0) or int(meta["max_epochs"])
    return Member(chosen, TrialConfig.from_flat(chosen["config"], meta["family"]), epochs, reseed)
