"""The Python API, for notebooks (Kaggle kernels are where many users live). The CLI calls the
same functions, so both give the same folders, files and errors.

    import digitsearch as ds
    folder = ds.tune(space="cnn", dataset="train.csv", trials=12)
    ds.best(folder)                      # the best trial: config, val_acc, epoch, parameters
    final = ds.retrain(folder)           # train+val, test metrics, model.pt, predictions.csv
    model = ds.load_model(final.model_file)
    labels, probabilities = model.predict(images_uint8)

Bad input raises digitsearch.UserError, whose one-line message names the problem and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from digitsearch.errors import UserError
from digitsearch.store import experiments
from digitsearch.store.layout import EXPERIMENT_FILE, MODEL_FILE, final_dir

Echo = Callable[[str], None]


def tune(space: str = "cnn", dataset: str = "digits", trials: int = 12, *, echo: Echo = print,
         **options) -> Path:
    """Run a search; returns its experiment folder. `options` are `digitsearch tune`'s, with
    underscores (max_epochs=10, scheduler="fifo", results="results", name="mine", quiet=True,
    time_limit="30m" or seconds, overrides={"transfer.init": "scratch"} for --set). A Ctrl-C keeps
    what finished."""
    from digitsearch.search.request import SearchRequest
    from digitsearch.search.runner import run_search

    known = {f.name for f in dataclasses.fields(SearchRequest)} - {"space", "dataset", "trials", "family_limits"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"tune() takes no option {', '.join(map(repr, unknown))}; "
                        f"its options: {', '.join(sorted(known))}")
    if "results" in options:
        options["results"] = Path(options["results"])
    if isinstance(options.get("time_limit"), str):  # "30m" as on the command line; a number is seconds
        from digitsearch.core.timebudget import parse_duration

        options["time_limit"] = parse_duration(options["time_limit"])
    request = SearchRequest(space=str(space), dataset=str(dataset), trials=trials, **options)
    return run_search(request, echo=echo).folder


def experiment(folder_or_name: str | Path | None = None, results: str | Path = "results") -> Path:
    """An experiment folder: a path to one, or a name in `results` (None: the latest there)."""
    if folder_or_name is not None and (Path(folder_or_name) / EXPERIMENT_FILE).is_file():
        return Path(folder_or_name)
    name = None if folder_or_name is None else str(folder_or_name)
    return experiments.resolve(Path(results), name)


def best(folder: str | Path | None = None, *, trial: str | None = None, results: str | Path = "results") -> dict:
    """The best trial of an experiment (or `trial`): trial_id, val_acc, best_epoch, epochs,
    n_params, config, ... as best.json holds it."""
    from digitsearch.store.trials import read_trial

    found = experiment(folder, results)
    return read_trial(found, trial) if trial else experiments.read_best(found)


def pick(folder: str | Path | None = None, choice: str = "best", *, results: str | Path = "results") -> dict:
    """The trial `choice` picks from an experiment's leaderboard ("best", "fastest", "smallest",
    "smallest-within:0.3": the fewest parameters within 0.3 accuracy points of the best, ...),
    as `best(trial=...)` returns it, with "picked" saying why."""
    from digitsearch.store import leaderboard, pareto
    from digitsearch.store.objectives import parse_pick

    wanted = parse_pick(choice)  # checked before any file is read
    found = experiment(folder, results)
    row = pareto.pick(leaderboard.read(found), wanted)
    return {**best(found, trial=str(row["trial_id"])), "picked": pareto.why_picked(row, wanted)}


@dataclass(frozen=True)
class Retrained:
    """A retrain's outputs: the folder (final/ or final-<trial>/), its model.pt, metrics.json's content."""

    folder: Path
    model_file: Path
    metrics: dict

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")


def retrain(folder: str | Path | None = None, *, epochs: int | None = None, exports: tuple[str, ...] = (),
            trial: str | None = None, results: str | Path = "results",
            progress: Callable[[int, dict], None] | None = None,
            on_start: Callable[[int], None] | None = None, accept_changed_data: bool = False,
            note: Callable[[str], None] = print, ensemble: int = 1, tta: bool = False,
            time_limit_s: float | None = None,
            on_member: Callable[[int, int, str], None] | None = None) -> Retrained:
    """Retrain the best config (or `trial`'s) on train+val; test it; write model.pt, predictions
    and metrics (replacing an earlier retrain of the same trial). exports: "torchscript", "onnx".
    Data that differ from those the search saw are a UserError, unless `accept_changed_data`
    (then `note` gets a warning line). ensemble=K averages the leaderboard's top K distinct
    configs; tta=True averages over shifted (and, for clothing, mirrored) test images; both are
    one model in model.pt. time_limit_s: the seconds the whole retrain may take; it picks the
    epochs (and how many of the K members) to fit, and `note` gets the plan. on_member(k, count,
    trial_id) before member k trains."""
    from digitsearch.final import retrain as retraining

    found = experiment(folder, results)
    metrics = retraining.run(found, epochs, progress=progress, on_start=on_start, exports=tuple(exports), trial=trial,
                             accept_changed_data=accept_changed_data, note=note, ensemble=ensemble, tta=tta,
                             time_limit_s=time_limit_s, on_member=on_member)
    out = final_dir(found, trial)
    return Retrained(out, out / MODEL_FILE, metrics)


def load_model(path: str | Path):
    """A model.pt as a Predictor: `predict(images)` -> (labels, probabilities)."""
    from digitsearch.final.predict import Predictor

    return Predictor.load(path)
