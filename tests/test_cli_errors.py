"""Bad input: one line naming the problem and the fix, exit code 2, no traceback, nothing overwritten.

These run in-process (Typer's CliRunner) and fail before Ray starts, so they are fast.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error, run_in_process, write_kaggle_csv, write_record
from digitsearch.cli import app
from digitsearch.data import idx

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def expect_error(*args: str, needles=()) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    return assert_one_line_error(result.stderr, *needles)


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def tune(results, *args):
    return ("tune", "--results", str(results), "--trials", "1", "--max-epochs", "2", *args)


def test_unknown_space_lists_known(results):
    expect_error(*tune(results, "--space", "nope"), needles=("nope", "cnn"))
    assert not results.exists()


def test_unknown_dataset_lists_known(results):
    expect_error(*tune(results, "--dataset", "nope"), needles=("nope", "digits", "mnist"))


def test_unknown_family(tmp_path, results):
    space = tmp_path / "odd.yaml"
    space.write_text("family: transformer\nparams:\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n")
    expect_error(*tune(results, "--space", str(space)), needles=("transformer", "cnn"))


@pytest.mark.parametrize("text, needle", [
    ("family: cnn\nparams: [unclosed\n", "line"),
    ("family: cnn\nparams:\n  lr: {type: gaussian, low: 0, high: 1}\n", "gaussian"),
    ("family: cnn\nparams:\n  lr: {type: uniform, low: 2, high: 1}\n", "low"),
    ("family: cnn\nparams:\n  opt: {type: choice, values: []}\n", "values"),
])
def test_bad_yaml(tmp_path, results, text, needle):
    space = tmp_path / "bad.yaml"
    space.write_text(text)
    expect_error(*tune(results, "--space", str(space)), needles=("bad.yaml", needle))


def _csv_cases(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 10
    good = write_kaggle_csv(tmp_path / "good.csv", images, labels)
    lines = good.read_text().splitlines()
    cases = {
        "empty": "",
        "no_label": "\n".join(line.split(",", 1)[1] for line in lines),
        "wrong_pixels": "\n".join(",".join(line.split(",")[:-1]) for line in lines),
        "non_numeric": "\n".join([lines[0], lines[1].replace(",", ",x,", 1).replace(",x,", ",x", 1)] + lines[2:]),
        "out_of_range": "\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",300"] + lines[2:]),
        "mixed_labels": "\n".join([lines[0], "seven" + lines[1][lines[1].index(","):]] + lines[2:]),
    }
    paths = {}
    for case, text in cases.items():
        paths[case] = tmp_path / f"{case}.csv"
        paths[case].write_text(text + ("\n" if text else ""))
    return good, paths


@pytest.mark.parametrize("case", ["empty", "no_label", "wrong_pixels", "non_numeric", "out_of_range", "mixed_labels"])
def test_bad_training_csv(tmp_path, results, case):
    _, paths = _csv_cases(tmp_path)
    expect_error(*tune(results, "--dataset", str(paths[case])), needles=(f"{case}.csv",))
    assert not results.exists()


def test_one_class_and_a_results_file_are_refused_before_anything_is_written(tmp_path, results):
    one_class = write_kaggle_csv(tmp_path / "one.csv", np.zeros((20, 28, 28), dtype=np.uint8), np.full(20, 3))
    expect_error(*tune(results, "--dataset", str(one_class)), needles=("one.csv", "every training label is 3",
                                                                       "at least 2 classes"))
    assert not results.exists()
    taken = tmp_path / "a-file"
    taken.write_text("mine")
    expect_error(*tune(taken), needles=("--results", "is a file"))
    assert taken.read_text() == "mine"


def test_test_csv_width_differs(tmp_path, results):
    good, _ = _csv_cases(tmp_path)
    small = write_kaggle_csv(tmp_path / "test.csv", np.zeros((3, 8, 8), dtype=np.uint8), None)
    expect_error(*tune(results, "--dataset", str(good), "--test", str(small)), needles=("test.csv",))


@pytest.mark.parametrize("flag, value, needle", [
    ("--trials", "0", "--trials"),
    ("--max-epochs", "0", "--max-epochs"),
    ("--grace-epochs", "5", "--grace-epochs"),
    ("--reduction-factor", "1", "--reduction-factor"),
    ("--scheduler", "hyperband", "--scheduler"),
    ("--search", "grid", "--search"),
    ("--val-fraction", "1.5", "val"),
])
def test_bad_tune_options(results, flag, value, needle):
    expect_error(*tune(results, flag, value), needles=(needle,))
    assert not results.exists()


def test_dataset_offline_and_absent(tmp_path, results, monkeypatch):
    monkeypatch.setenv("DIGITSEARCH_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(idx, "SYSTEM_DIRS", {})

    def offline(name, root):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(idx, "download", offline)
    expect_error(*tune(results, "--dataset", "fashion-mnist"),
                 needles=("fashion-mnist", str(tmp_path / "nothing"), "--data-dir"))


def test_existing_name_is_refused_and_untouched(results):
    folder = results / "mine"
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps({"created": 1}))
    expect_error(*tune(results, "--name", "mine"), needles=("mine", "already exists"))
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.json"]


def test_best_without_any_experiment(results):
    expect_error("best", "--results", str(results), needles=("no experiment", "digitsearch tune"))


def test_best_unknown_name(results):
    expect_error("best", "--results", str(results), "--name", "ghost", needles=("ghost",))


def test_best_without_a_completed_trial(results):
    folder = results / "failed"
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps({"created": 1}))
    expect_error("best", "--results", str(results), needles=("no completed trial", "leaderboard.csv"))


def test_retrain_with_zero_epochs(results):
    folder = results / "done"
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps({"created": 1, "max_epochs": 3}))
    (folder / "best.json").write_text(json.dumps({"trial_id": "t1", "val_acc": 0.9, "best_epoch": 2, "epochs": 3,
                                                   "n_params": 10, "config": {}}))
    expect_error("best", "--results", str(results), "--retrain", "--epochs", "0", needles=("--epochs",))
    assert not (folder / "final").exists()


def test_predict_with_a_file_that_is_not_a_model(tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("not a model")
    expect_error("predict", "--model", str(fake), "--input", "x.csv", needles=("model.pt",))


def test_listings():
    for command, needle in (("spaces", "cnn"), ("datasets", "fashion-mnist"), ("models", "cnn")):
        result = invoke(command)
        assert result.exit_code == 0 and needle in result.stdout
    shown = invoke("spaces", "--show", "cnn")
    assert "cnn.filters_3" in shown.stdout and "when cnn.depth >= 3" in shown.stdout


@pytest.mark.parametrize("address, needle", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at '127.0.0.1:1'"),
    ("ray://127.0.0.1:1", "cannot reach the Ray cluster"),
    ("nonsense", "write auto, HOST:PORT"),
])
def test_an_unreachable_cluster_fails_at_once_and_writes_nothing(results, address, needle):
    expect_error(*tune(results, "--address", address), needles=(needle,))
    assert not results.exists()


@pytest.mark.parametrize("args, needle", [
    (("--resume",), "--resume needs --name"),
    (("--resume", "--name", "nothing"), "no experiment 'nothing'"),
    (("--add-trials", "2"), "--add-trials K extends a finished search"),
    (("--resume", "--name", "x", "--add-trials", "-1"), "--add-trials"),
])
def test_resume_and_add_trials_misuse(results, args, needle):
    expect_error(*tune(results, *args), needles=(needle,))


def test_a_half_written_experiment_is_one_line_not_a_traceback(results):
    """A driver killed before its first leaderboard leaves experiment.json alone (status running)."""
    write_record(results / "halfway", status="running")
    expect_error("best", "--results", str(results), "--trial", "abc", needles=("no leaderboard.csv yet", "--resume"))
    expect_error("report", "--results", str(results), needles=("no leaderboard.csv yet", "--name halfway --resume"))


def test_a_name_taken_meanwhile_is_refused_by_the_folder_itself(results):
    from digitsearch.errors import UserError
    from digitsearch.store import experiments

    experiments.create(results, "once")
    with pytest.raises(UserError, match="already exists"):
        experiments.create(results, "once")  # what a second `tune --name once` started together meets


@pytest.mark.extended
@pytest.mark.e2e
def test_a_trial_bigger_than_the_machine_is_refused_before_anything_is_written(tmp_path):
    """Ray has to be up to say what the machine (or cluster) holds: it starts, nothing is written."""
    from conftest import run_cli

    results = tmp_path / "results"
    run = run_cli("tune", "--results", str(results), "--trials", "1", "--cpus-per-trial", "512", timeout=180)
    assert run.returncode == 2, run.stdout + run.stderr
    assert_one_line_error(run.stderr, "one trial needs 512", "--cpus-per-trial")
    assert not results.exists()


def test_an_eoferror_is_told_as_a_file_that_ended_early_not_as_aborted(capsys):
    """click turns any EOFError into Abort; no command reads the terminal, so it is a file
    (CI once showed a bare "aborted" for a searcher state a killed driver had left empty)."""
    import typer

    from digitsearch.cli.app import OneLineErrors

    broken = typer.Typer(cls=OneLineErrors)

    @broken.command()
    def load() -> None:
        raise EOFError("Ran out of input")

    @broken.command()
    def other() -> None:
        pass

    assert broken(["load"], standalone_mode=False) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: a file ended early (EOFError: Ran out of input)"


@pytest.mark.parametrize("args,needles", [
    (["--space", "seq2seq", "--dataset", "digits"], ["'seq2seq' serves sequence data", "--dataset addition"]),
    (["--space", "cnn", "--dataset", "addition"], ["'cnn' serves image data", "--space seq2seq"]),
    (["--space", "transfer", "--set", "transfer.init=pretrained"], ["pretrained"]),
    (["--space", "transfer", "--set", "transfer.init=checkpoint:/no/such/file.pt"], ["/no/such/file.pt"]),
    (["--space", "cnn", "--dataset", "numbers", "--base", "no-such-digits"], ["no-such-digits"]),
    (["--space", "cnn", "--dataset", "digits", "--base", "mnist"], ["--base only applies"]),
    (["--space", "cnn", "--set", "cnn.colour=red"], ["--set cnn.colour", "no parameter"]),
    (["--space", "cnn", "--set", "depth"], ["NAME=VALUE"]),
])
def test_bad_pairings_are_one_line(args, needles, tmp_path):
    """In-process: the space and data pairings are checked before a search starts."""
    result = run_in_process("tune", "--results", str(tmp_path), *args)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert_one_line_error(result.stderr, *needles)
    assert not tmp_path.exists() or not any(tmp_path.iterdir()), "nothing is written for a refused search"


def test_a_missing_portfolio_file_is_refused_before_anything_starts(results, tmp_path):
    expect_error(*tune(results, "--portfolio", str(tmp_path / "mine.yaml")),
                 needles=("--portfolio", "mine.yaml: no such file"))
    assert not results.exists()


def test_a_warm_start_with_resume_is_refused(results):
    expect_error(*tune(results, "--warm-start", "old", "--resume", "--name", "new"),
                 needles=("--warm-start starts a new search",))


def test_portfolio_build_of_a_missing_table_is_one_line(tmp_path):
    expect_error("portfolio", "build", "--table", str(tmp_path / "table.csv"),
                 needles=("table.csv: cannot be read as a portfolio table",))
