"""experiment.json as a typed record: what a search was asked, on which data and space, where its
Tune rounds are and how it ended; checked on every read and write.

Files written by earlier versions of this project are brought to the current schema by `migrate`,
in one place, so the code that reads the record finds every field. A file that does not fit
(hand-edited, or another program's) is one line, not a traceback deep in a command.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from digitsearch.errors import UserError
from digitsearch.store.layout import FIRST_ROUND, RUNTIME_KEYS

SCHEMA_VERSION = 1
# a time-limited search without a trial count was written with this count, never reached
OLD_UNCAPPED_TRIALS = 100_000


class Round(BaseModel):
    """One Tune round: its folder under tune_root, and its trials (None: until the time limit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dir: str
    trials: int | None


class ExperimentRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = SCHEMA_VERSION
    # identity
    name: str
    study_name: str  # the Optuna study's name: the folder's name when the search began
    created: float
    status: Literal["running", "finished", "interrupted"]
    # the request (search.request.SearchRequest's fields, less how the command ran)
    space: str
    dataset: str
    base: str | None = None
    test: str | None = None
    data_dir: str | None = None
    val_fraction: float
    trials: int | None  # None: a time limit alone ends the search
    time_limit: float | None = None
    max_epochs: int
    search_examples: int | None = None
    grace_epochs: int = 1
    reduction_factor: int = 4
    scheduler: str
    search: str
    cpus_per_trial: float
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    max_params: int | None = None
    max_mflops: float | None = None
    family_limits: dict[str, dict[str, int | float]] = Field(default_factory=dict)
    max_latency_ms: float | None = None
    objective: str = "accuracy"
    seed: int
    overrides: dict[str, Any] = Field(default_factory=dict)
    results: str
    storage: str | None = None
    portfolio: str = "builtin"
    warm_start: str | None = None
    # the space
    family: str
    families: list[str]
    space_path: str
    space_fingerprint: str | None = None  # None: written before spaces were fingerprinted (not checked)
    starting_points: list[dict[str, Any]] | None = None  # None: the space file's own
    # the data
    task: Literal["image", "sequence"] = "image"
    dataset_name: str
    dataset_notes: list[str] = Field(default_factory=list)
    class_names: list[str] | None = None
    labels: list[Any] | None = None
    sizes: dict[str, int]
    data_fingerprint: dict[str, Any] | None = None  # None: written before data were fingerprinted
    # where Tune's rounds are
    tune_root: str | None = None  # None: the experiment folder itself (store.layout.relocate)
    rounds: list[Round]


def migrate(raw: dict) -> dict:
    """A file of any schema this project wrote, in the current one."""
    found = raw.get("schema_version", 0)
    if found > SCHEMA_VERSION:
        raise UserError(f"experiment {raw.get('name')!r} was written by a newer digitsearch (schema {found}, this one "
                        f"reads up to {SCHEMA_VERSION}); upgrade digitsearch to read it")
    meta = {k: v for k, v in raw.items() if k not in RUNTIME_KEYS}
    if found == 0:
        meta.setdefault("study_name", meta.get("name"))
        meta.setdefault("space_path", meta.get("space"))  # the name or path given to --space, before it was resolved
        uncapped = meta.get("time_limit") and meta.get("trials") == OLD_UNCAPPED_TRIALS
        if uncapped:
            meta["trials"] = None
        if not meta.get("rounds"):  # before rounds: one, in the experiment folder
            meta["rounds"] = [{"dir": FIRST_ROUND, "trials": meta.get("trials")}]
        meta["rounds"] = [{**r, "trials": None if uncapped and r.get("trials") == OLD_UNCAPPED_TRIALS else r["trials"]}
                          for r in meta["rounds"]]
    meta["schema_version"] = SCHEMA_VERSION
    return meta


def checked(raw: dict, where: str) -> dict:
    """`raw` (migrated) as the record holds it, or one line saying what does not fit."""
    try:
        return ExperimentRecord.model_validate(raw).model_dump()
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "the file"
        raise UserError(f"{where} is not an experiment record this digitsearch reads: {field}: {first['msg']} "
                        f"({err.error_count()} problem{'s' * (err.error_count() != 1)})") from None
