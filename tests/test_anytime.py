"""`digitsearch bench --anytime` (bench/anytime.py, bench/peer_optuna.py): the one command against
the recipe net and a plain Optuna loop at equal wall time. The units check the table and its
verdicts, the commands each arm runs and the refusals; the extended test runs all three arms."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from conftest import run_in_process
from digitsearch.bench import anytime
from digitsearch.bench.anytime import PEER, RECIPE, Arm, Run


def runs() -> list[Run]:
    return [Run("digitsearch --space cnn", 600, 0, 0.996, 590), Run(RECIPE, 600, 0, 0.994, 600),
            Run(PEER, 600, 0, 0.995, 610), Run("digitsearch --space cnn", 600, 1, 0.997, 595),
            Run(RECIPE, 600, 1, 0.993, 601), Run(PEER, 600, 1, None, 30, "exit 1")]


def test_the_summary_has_each_arms_median_over_the_seeds_that_ran():
    rows = {row["arm"]: row for row in anytime.summary(runs())}
    assert rows["digitsearch --space cnn"]["median"] == pytest.approx(0.9965)
    assert rows[RECIPE]["median"] == pytest.approx(0.9935)
    assert rows[PEER]["median"] == pytest.approx(0.995)  # the failed seed is left out, and shown
    assert rows[PEER]["accuracies"] == [0.995, None]


def test_the_verdict_compares_with_the_better_peer():
    said = anytime.verdicts(anytime.summary(runs()))
    assert said == ["10m: digitsearch --space cnn median 99.65 % is at least the better peer's "
                    "(plain Optuna loop, 99.50 %): +0.15 points"]
    behind = [Run("digitsearch --space all", 600, 0, 0.990, 600), Run(RECIPE, 600, 0, 0.994, 600)]
    assert "below" in anytime.verdicts(anytime.summary(behind))[0]
    tied = [Run("digitsearch --space cnn", 600, 0, 0.9965, 600), Run(PEER, 600, 0, 0.9965, 600)]
    assert anytime.verdicts(anytime.summary(tied))[0].endswith("is at least the better peer's (plain Optuna loop, "
                                                                "99.65 %): +0.00 points")


def test_the_table_is_written_with_every_run(tmp_path):
    path = anytime._write(runs(), "mnist-10k", tmp_path / "anytime-x")
    text = path.read_text()
    assert "| 10m | recipe net | 99.40, 99.30 | **99.35 %** | 600 s |" in text
    assert "| 10m | plain Optuna loop | 99.50, failed |" in text
    stored = json.loads(path.with_suffix(".json").read_text())
    assert len(stored["runs"]) == 6 and stored["verdicts"]


def test_runs_todays_table_holds_are_kept_and_only_the_rest_run(tmp_path, monkeypatch):
    stem = time.strftime("anytime-d-%Y-%m-%d")
    anytime._write(runs(), "d", tmp_path / stem)
    ran = []

    def one(arm, dataset, budget, seed, logs, echo):
        ran.append((arm.name, seed))
        return Run(arm.name, budget, seed, 0.99, 600)

    monkeypatch.setattr(anytime, "_one", one)
    said = []
    anytime.run("d", [600], 3, ["cnn"], tmp_path, echo=said.append)
    # the failed peer run of seed 1 runs again, seed 2 is new; the five results stay
    assert ran == [(PEER, 1), ("digitsearch --space cnn", 2), (RECIPE, 2), (PEER, 2)]
    assert sum("kept from" in line for line in said) == 5
    stored = json.loads((tmp_path / f"{stem}.json").read_text())
    assert [r["test_accuracy"] for r in stored["runs"]][:3] == [0.996, 0.994, 0.995]
    ran.clear()
    anytime.run("d", [600], 1, ["all"], tmp_path, echo=said.append)  # another arm: the peers kept
    assert ran == [("digitsearch --space all", 0)]
    arms = {r["arm"] for r in json.loads((tmp_path / f"{stem}.json").read_text())["runs"]}
    assert arms == {"digitsearch --space cnn", "digitsearch --space all", RECIPE, PEER}
    ran.clear()
    anytime.run("other", [600], 1, ["cnn"], tmp_path, echo=said.append)  # another dataset: nothing kept
    assert len(ran) == 3


def test_each_arm_runs_a_whole_command_with_the_seed(tmp_path):
    product, recipe, peer = anytime.arms(["cnn"])
    command = product.command("mnist-10k", 600, 2, tmp_path)
    assert command[:3] == [sys.executable, "-m", "digitsearch.cli"]
    assert command[3:] == ["tune", "--space", "cnn", "--dataset", "mnist-10k", "--time-limit", "600s", "--retrain",
                           "--ensemble", "3", "--tta", "--seed", "2", "--results", str(tmp_path), "--name", "run"]
    assert recipe.command("d", 600, 2, tmp_path)[3:8] == ["bench", "--baseline", "600s", "--dataset", "d"]
    assert "--seed" in recipe.command("d", 600, 2, tmp_path)
    assert peer.command("d", 600, 2, tmp_path)[1:3] == ["-m", "digitsearch.bench.peer_optuna"]


def test_an_arm_without_its_result_file_is_a_failed_run(tmp_path):
    with pytest.raises(RuntimeError, match="no result file"):
        Arm(PEER).accuracy(tmp_path)
    (tmp_path / "peer.json").write_text(json.dumps({"test_accuracy": 0.99}))
    assert Arm(PEER).accuracy(tmp_path) == 0.99


@pytest.mark.parametrize("args, message", [
    (["--anytime", "10m", "--baseline", "10m"], "one at a time"),
    (["--anytime", "soon"], "not a duration"),
    (["--space", "cnn"], "--space goes with --anytime"),
    (["--anytime", "10m", "--space", "nosuchspace"], "nosuchspace"),
    (["--anytime", "10m", "--dataset", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_bad_anytime_options_cost_one_line(args, message):
    ran = run_in_process("bench", *args)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert message in ran.stdout + ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr


def test_the_peer_loop_picks_a_pruned_trial_when_none_finished():
    import optuna

    from digitsearch.bench import peer_optuna

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.report(0.8, 1)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert peer_optuna._score(peer_optuna._best(study)) == 0.8
    with pytest.raises(RuntimeError, match="no trial finished an epoch"):
        peer_optuna._best(optuna.create_study(direction="maximize"))


@pytest.mark.extended
def test_all_three_arms_run_and_are_tabled(tmp_path):
    from conftest import run_cli

    ran = run_cli("bench", "--anytime", "90s", "--seeds", "1", "--dataset", "digits", "--out", str(tmp_path),
                  timeout=500)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    stored = json.loads(next(Path(tmp_path).glob("anytime-digits-*.json")).read_text())
    assert [r["arm"] for r in stored["runs"]] == ["digitsearch --space cnn", RECIPE, PEER]
    assert all(r["test_accuracy"] is not None and r["test_accuracy"] > 0.8 for r in stored["runs"]), stored["runs"]
    assert len(list((tmp_path / "anytime-logs").rglob("*.log"))) == 3
