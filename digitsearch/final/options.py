"""The retrain's options that go together or not (`--ensemble`, `--tta`, `--time-limit`, `--epochs`,
`--trial`), checked before anything is read or trained; no torch here, so a refusal is quick."""
from __future__ import annotations

from digitsearch.errors import UserError


def check(epochs: int | None = None, ensemble: int = 1, tta: bool = False, time_limit_s: float | None = None,
          trial: str | None = None) -> None:
    """A UserError naming the clash, in one line."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise UserError(f"--ensemble must be a whole number of at least 1 (1: the best trial alone), got {ensemble!r}")
    if epochs is not None and time_limit_s is not None:
        raise UserError("--epochs and --time-limit clash: with --time-limit the retrain picks the epochs that fit; "
                        "give one of them")
    if time_limit_s is not None and not time_limit_s > 0:
        raise UserError(f"--time-limit must be above zero, got {time_limit_s!r} seconds")
    if ensemble > 1 and trial is not None:
        raise UserError("--ensemble retrains the leaderboard's top trials; --trial names one: give one of them")


def check_task(task: str | None, ensemble: int = 1, tta: bool = False) -> None:
    """Ensembles and test-time views serve image classifiers; a sequence model's outputs are
    decoded symbol by symbol (the addition task), which neither averaging nor shifting fits."""
    if task == "sequence" and (ensemble > 1 or tta):
        which = " and ".join(name for name, on in (("--ensemble", ensemble > 1), ("--tta", tta)) if on)
        raise UserError(f"{which}: for image classifiers only, and this experiment's task is sequence "
                        "(addition); retrain it without them")
