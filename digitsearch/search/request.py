"""SearchRequest: everything `digitsearch tune` (or `digitsearch.tune()`) asks for, checked once.

The CLI and the Python API both build one; nothing here imports Ray, torch or pandas, so the
CLI can take its defaults and choices from it at import time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from digitsearch.errors import UserError
from digitsearch.store.layout import RUNTIME_KEYS
from digitsearch.store.objectives import OBJECTIVES, parse_objective

if TYPE_CHECKING:
    from digitsearch.spaces import SearchSpace

# a sampled config over either limit is skipped before it becomes a trial (search.feasible), a
# starting point over it recorded as over budget: one such trial could cost as much as a dozen
# ordinary ones on a CPU
DEFAULT_LIMITS = {"max_params": 3_000_000, "max_mflops": 40.0}
DEFAULT_TRIALS = 12
# under --time-limit, trials train on at most this many training examples (--search-examples):
# the search ranks configs, the retrain trains the winner on everything. Full Fashion-MNIST's
# 54,000 images cost the recipe net 15 epochs x ~1 min on one core, so a 60-minute command's
# search share trained only the starting points (results/README.md); on 12,000 an epoch is ~15 s
# and sampled configs get most of the share. MNIST-10k (7,200 train) is below it: unchanged.
TIME_LIMITED_SEARCH_EXAMPLES = 12_000
# what `tune --resume` may change: how this run is shown, where it runs, how many trials more
# (RUNTIME_KEYS, which experiment.json does not keep), and which experiment; everything else
# (the space, the data, the budget) is the stored search's
RUNTIME_FIELDS = (*RUNTIME_KEYS, "results", "name")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class Scheduler(str, Enum):
    """asha: early stopping at rungs; fifo: every trial runs all its epochs."""

    asha = "asha"
    fifo = "fifo"


class Searcher(str, Enum):
    """optuna: TPE (multivariate, per branch), every other trial a local step from the best
    complete one (search/mutation.py); random: random sampling."""

    optuna = "optuna"
    random = "random"


def _one_of(value: str, choices: type[Enum], option: str) -> str:
    names = [member.value for member in choices]
    if value not in names:
        raise UserError(f"{option} must be one of {', '.join(names)} (got {value!r})")
    return value


@dataclass(frozen=True)
class SearchRequest:
    """A search as asked; `checked()` gives the value the search runs (refused in one line if bad)."""

    space: str = "cnn"
    dataset: str = "digits"
    base: str | None = None  # the digit set `--dataset numbers` builds its numbers from
    test: str | None = None
    data_dir: str | None = None
    val_fraction: float = 0.1
    trials: int | None = DEFAULT_TRIALS  # None: DEFAULT_TRIALS, or under a time limit as many as fit (uncapped)
    # seconds the whole search may take (`--time-limit 30m`): no trial starts that cannot reach its
    # first rung in the time left, and running trials stop at an epoch boundary (search.deadline)
    time_limit: float | None = None
    max_epochs: int = 15
    # trials train on a stratified subset of this many training examples (validation, test and
    # the retrain use all); None: all, or TIME_LIMITED_SEARCH_EXAMPLES under a time limit; 0: all
    search_examples: int | None = None
    # ASHA's rungs are grace x reduction_factor^k epochs; 1 (ASHA's own default) lets a search
    # drop its weak configs after one epoch, which `digitsearch bench` measured to cost no best val_acc
    grace_epochs: int = 1
    # ASHA keeps the top 1/reduction_factor at each rung; 4 is the ASHA paper's eta. On MNIST-10k
    # 3 trained 0.38 of FIFO's epochs for the same best val_acc (`digitsearch bench`, 2026-11-25)
    reduction_factor: int = 4
    scheduler: str = Scheduler.asha.value
    search: str = Searcher.optuna.value
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: session.gpu_share's rule where Ray has GPUs, else 0
    max_concurrent: int | None = None
    max_params: int | None = None  # None: the space's `limits:`, else DEFAULT_LIMITS
    max_mflops: float | None = None
    # not an option: resolve_limits's budget for the families of a space across families whose
    # own space sets `limits:` ({"cnn": {"max_params": ..., "max_mflops": 120.0}}); the
    # other families' trials are held to max_params and max_mflops
    family_limits: dict = field(default_factory=dict)
    # --max-latency-ms: a trial slower than this per image (batch 1, its own threads) is over budget
    # before its first epoch, and infeasible to the Optuna study (a constraint)
    max_latency_ms: float | None = None
    # what the study optimizes: accuracy alone, or accuracy against costs ("accuracy,latency"):
    # a multi-objective study (TPE's), while ASHA still stops trials on val_acc
    objective: str = "accuracy"
    seed: int = 0
    name: str | None = None
    overrides: dict = field(default_factory=dict)  # --set name=value: parameters fixed as constants
    results: Path = field(default_factory=lambda: Path("results"))
    verbose: bool = False
    quiet: bool = False  # only the outcome: no data notes, no line per trial, no top table
    address: str | None = None  # an existing Ray cluster; None: a private local Ray
    storage: str | None = None  # where Tune keeps trials and checkpoints (a shared folder or a URI)
    resume: bool = False  # finish (or with add_trials, extend) the experiment `name`
    add_trials: int = 0
    # the configs evaluated first (spaces/portfolio.py): "builtin" (the built-in spaces only),
    # "none", or a portfolio file, which seeds any space
    portfolio: str = "builtin"
    # an earlier experiment (folder or name): its best configs go first, and on the same data its
    # finished trials join the study (search/warm_start.py)
    warm_start: str | None = None

    def checked(self) -> SearchRequest:
        """This request with its trial count settled (DEFAULT_TRIALS where none was given and no
        time limit ends the search), or a UserError before anything is loaded or written. The
        CLI's own range checks (Typer's min=) catch most of these first; the Python API relies on this."""
        self._check_budget()
        _one_of(self.scheduler, Scheduler, "--scheduler")
        _one_of(self.search, Searcher, "--search")
        if self.cpus_per_trial <= 0 or (self.gpus_per_trial or 0) < 0:
            raise UserError("--cpus-per-trial must be above 0 and --gpus-per-trial at least 0")
        if (self.max_params is not None and self.max_params < 1) or \
                (self.max_mflops is not None and self.max_mflops <= 0):
            raise UserError("--max-params and --max-mflops must be above 0")
        if self.max_latency_ms is not None and not self.max_latency_ms > 0:
            raise UserError(f"--max-latency-ms must be above 0 (got {self.max_latency_ms:g})")
        parse_objective(self.objective)
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UserError(f"--max-concurrent must be at least 1 (got {self.max_concurrent})")
        if self.quiet and self.verbose:
            raise UserError("--quiet and --verbose exclude each other; pick one")
        if self.add_trials < 0 or (self.add_trials and not self.resume):
            raise UserError("--add-trials K extends a finished search: use it with --resume --name NAME, K >= 1")
        from digitsearch.spaces import portfolio  # not at import: the CLI's start-up loads no space code

        portfolio.check_choice(self.portfolio)
        if self.warm_start and self.resume:
            raise UserError("--warm-start starts a new search from an earlier one; --resume finishes the same one")
        if self.resume and not self.name:
            raise UserError("--resume needs --name NAME: the experiment to finish or extend")
        if Path(self.results).exists() and not Path(self.results).is_dir():
            raise UserError(f"--results {self.results} is a file; give the folder experiments go in "
                            f"(it is made if missing)")
        settled = DEFAULT_TRIALS if self.trials is None and self.time_limit is None else self.trials
        return replace(self, trials=settled)

    @property
    def trial_examples(self) -> int | None:
        """How many training examples a trial trains on at most; None: all of them."""
        if self.search_examples is None:
            return TIME_LIMITED_SEARCH_EXAMPLES if self.time_limit is not None else None
        return self.search_examples or None

    @property
    def objectives(self) -> tuple[str, ...]:
        """("accuracy",) or e.g. ("accuracy", "latency"): --objective, checked."""
        return parse_objective(self.objective)

    @property
    def study_metrics(self) -> tuple[list[str], list[str]] | tuple[str, str]:
        """Optuna's metric(s) and mode(s): one of each for accuracy alone, lists for several."""
        chosen = [OBJECTIVES[name] for name in self.objectives]
        if len(chosen) == 1:
            return chosen[0].metric, chosen[0].mode
        return [o.metric for o in chosen], [o.mode for o in chosen]

    @property
    def uncapped(self) -> bool:
        """A time-limited search with no trial count of its own: the limit alone ends it."""
        return self.trials is None and self.time_limit is not None

    def _check_budget(self) -> None:
        if self.time_limit is not None and not self.time_limit > 0:
            raise UserError(f"--time-limit must be above zero (got {self.time_limit} s)")
        if self.trials is not None and self.trials < 1:
            raise UserError(f"--trials must be at least 1 (got {self.trials})")
        if self.max_epochs < 1:
            raise UserError(f"--max-epochs must be at least 1 (got {self.max_epochs})")
        if self.search_examples is not None and self.search_examples < 0:
            raise UserError(f"--search-examples must be 0 (all) or a count of training examples "
                            f"(got {self.search_examples})")
        if not 1 <= self.grace_epochs <= self.max_epochs:
            raise UserError(f"--grace-epochs must be between 1 and --max-epochs ({self.max_epochs}), "
                            f"got {self.grace_epochs}")
        if self.reduction_factor < 2:
            raise UserError(f"--reduction-factor must be at least 2 (got {self.reduction_factor})")


def option_of(name: str) -> str:
    """A SearchRequest field's `digitsearch tune` option: max_epochs -> --max-epochs."""
    return "--set" if name == "overrides" else "--" + name.replace("_", "-")


def refuse_on_resume(options: list[str]) -> None:
    """`--resume` continues the stored search: options it cannot change are refused in one line."""
    if not options:
        return
    hint = " (use --add-trials K for more trials)" if "--trials" in options else ""
    raise UserError(f"--resume continues the stored search; {', '.join(options)} cannot change{hint}; "
                    f"drop {'it' if len(options) == 1 else 'them'}, or start a new search with another --name")


def fixed_on_resume(req: SearchRequest) -> list[str]:
    """The options a resumed request sets away from their defaults that --resume cannot change
    (for the Python API; the CLI also refuses those given explicitly with their default value)."""
    default = SearchRequest()
    return [option_of(f.name) for f in fields(SearchRequest)
            if f.name not in RUNTIME_FIELDS and getattr(req, f.name) != getattr(default, f.name)]


def resolve_limits(req: SearchRequest, space: SearchSpace) -> SearchRequest:
    """The request with its budget settled: the command line's, else the space's `limits:`, else
    DEFAULT_LIMITS. In a space that includes others, a family whose own space sets a limit is
    held to it where neither the command line nor the including space sets that one: `--space
    all` trains the cnn recipe net as `--space cnn` does."""
    given = {k: v for k, v in (("max_params", req.max_params), ("max_mflops", req.max_mflops)) if v is not None}
    max_params, max_mflops = _typed({**DEFAULT_LIMITS, **space.limits, **given})
    family_limits = {family: dict(zip(("max_params", "max_mflops"),
                                      _typed({**DEFAULT_LIMITS, **own, **space.limits, **given})))
                     for family, own in space.family_limits.items()}
    return replace(req, max_params=max_params, max_mflops=max_mflops, family_limits=family_limits)


def _typed(limits: dict) -> tuple[int, float]:
    return int(limits["max_params"]), float(limits["max_mflops"])


def parse_overrides(items: list[str]) -> dict:
    """`--set name=value` items -> {name: value}; values read as YAML (3, 0.5, true, text)."""
    import yaml

    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set {item!r}: write NAME=VALUE, e.g. --set transfer.init=scratch")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            value = float(value)  # PyYAML reads 1e-3 (no dot) as text
        # a scalar as YAML reads it; anything else (a mapping from "a: b", an empty text) stays text
        overrides[name.strip()] = value if isinstance(value, (bool, int, float, str)) else text
    return overrides
