"""--objective accuracy,latency through the command line: a 6-trial search on the bundled digits
whose study has two directions and whose leaderboard has the cost and pareto columns; best
--pick on it; the report's front; --max-latency-ms as the budget guard and a study constraint."""
from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from matplotlib.image import imread

from conftest import assert_one_line_error, run_cli, run_in_process
from digitsearch.store.leaderboard import COST_COLUMNS

pytestmark = [pytest.mark.e2e, pytest.mark.extended, pytest.mark.usefixtures("ray_per_file")]  # one Ray


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    results = tmp_path_factory.mktemp("objectives")
    ran = run_in_process("tune", "--space", "cnn", "--trials", "6", "--max-epochs", "2", "--objective",
                         "accuracy,latency", "--results", str(results), "--name", "mo", "--quiet")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    return results


def _study(folder):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="mo", storage=f"sqlite:///{folder / 'optuna.db'}")


def test_the_study_has_two_directions_and_the_leaderboard_the_costs(searched):
    folder = searched / "mo"
    study = _study(folder)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    told = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values[0] > 0]
    assert told and all(len(t.values) == 2 and t.values[1] > 0 for t in told)
    table = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str})
    assert len(table) == 6 and {*COST_COLUMNS, "pareto", "cost_threads", "cost_cpu"} <= set(table.columns)
    trained = table[table["status"].isin(["completed", "stopped early"])]
    assert (trained["latency_ms"] > 0).all() and (trained["images_per_s"] > 0).all() and (trained["model_kb"] > 0).all()
    assert (trained["cost_threads"] == 1).all() and trained["cost_cpu"].astype(str).str.len().gt(0).all()
    front = table[table["pareto"]]
    assert len(front) >= 1
    # each front trial: nothing else at least as accurate and as fast
    for row in front.itertuples():
        better = trained[(trained.val_acc >= row.val_acc) & (trained.latency_ms <= row.latency_ms)
                         & ((trained.val_acc > row.val_acc) | (trained.latency_ms < row.latency_ms))]
        assert better.empty, (row.trial_id, better.to_string())
    assert json.loads((folder / "experiment.json").read_text())["objective"] == "accuracy,latency"


def test_best_pick_chooses_from_the_leaderboard_and_retrains_the_pick(searched):
    table = pd.read_csv(searched / "mo" / "leaderboard.csv", dtype={"trial_id": str})
    usable = table[table["status"].isin(["completed", "stopped early"]) & (table["val_acc"] > 0)]
    fastest = usable.sort_values(["latency_ms", "val_acc"], ascending=[True, False]).iloc[0]
    ran = run_in_process("best", "--results", str(searched), "--name", "mo", "--pick", "fastest", "--retrain",
                         "--epochs", "1")
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert f"trial {fastest.trial_id}" in ran.stdout and "picked fastest: val_acc" in ran.stdout
    assert (searched / "mo" / f"final-{fastest.trial_id}" / "model.pt").is_file()
    import digitsearch as ds  # the Python API picks the same trial

    picked = ds.pick(searched / "mo", "fastest")
    assert picked["trial_id"] == fastest.trial_id and picked["picked"].startswith("fastest: val_acc")
    within = run_in_process("best", "--results", str(searched), "--name", "mo", "--pick", "smallest-within:100")
    assert f"{int(usable['n_params'].min()):,} parameters" in within.stdout


def test_pick_errors_are_one_line_before_anything_is_read(tmp_path):
    ran = run_cli("best", "--results", str(tmp_path), "--name", "none", "--pick", "quickest")
    assert_one_line_error(ran.stderr, "--pick 'quickest'")
    ran = run_cli("best", "--results", str(tmp_path), "--name", "none", "--pick", "fastest", "--trial", "x")
    assert_one_line_error(ran.stderr, "does not go with --trial")
    ran = run_cli("tune", "--objective", "latency", "--results", str(tmp_path))
    assert_one_line_error(ran.stderr, "start with accuracy")
    ran = run_cli("tune", "--max-latency-ms", "0", "--results", str(tmp_path))
    assert ran.returncode == 2 and not any(tmp_path.iterdir())  # refused before anything is written
    assert_one_line_error(ran.stderr, "--max-latency-ms must be above 0")


def test_the_report_draws_the_front_and_tables_it(searched):
    ran = run_in_process("report", "--results", str(searched), "--name", "mo")
    assert ran.returncode == 0, ran.stdout
    out = searched / "mo" / "report"
    image = imread(out / "pareto_front.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    text = (out / "report.md").read_text()
    assert "## Accuracy against cost" in text and "Objective `accuracy,latency`" in text
    assert "| trial | family | origin | val acc | parameters |" in text


def test_the_front_figure_names_its_axes(searched):
    from digitsearch.store import pareto
    from digitsearch.store.objectives import OBJECTIVES
    from digitsearch.viz.report_plots import pareto_fronts

    table = pd.read_csv(searched / "mo" / "leaderboard.csv", dtype={"trial_id": str})
    costs = [OBJECTIVES["latency"], OBJECTIVES["params"]]
    fig = pareto_fronts(table, costs, [pareto.front(table, (c,)) for c in costs], pareto.usable(table))
    labels = [(ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) for ax in fig.axes]
    assert labels == [("CPU latency per image (ms, batch 1) (log scale)", "validation accuracy (best epoch)", "log"),
                      ("trainable parameters (log scale)", "validation accuracy (best epoch)", "log")]
    starts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert starts and all(s.startswith("start ") for s in starts)


def test_a_latency_limit_stops_slow_trials_before_training_and_tells_the_study(tmp_path):
    ran = run_in_process("tune", "--space", "cnn", "--trials", "2", "--max-epochs", "1", "--max-latency-ms", "0.001",
                         "--results", str(tmp_path), "--name", "fast", "--quiet")
    assert ran.returncode == 0, ran.stdout[-3000:]
    table = pd.read_csv(tmp_path / "fast" / "leaderboard.csv", dtype={"trial_id": str})
    assert (table["status"] == "over budget").all() and table["note"].str.contains("--max-latency-ms 0.001").all()
    assert (table["epochs"] == 0).all() and (table["latency_ms"] > 0.001).all()
    study = optuna.load_study(study_name="fast", storage=f"sqlite:///{tmp_path / 'fast' / 'optuna.db'}")
    ran_trials = [t for t in study.trials if t.state.is_finished()]  # the other starting points stay WAITING
    assert len(ran_trials) == 2 and all(t.system_attrs["constraints:latency_ms"] > 0 for t in ran_trials)
