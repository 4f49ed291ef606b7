"""`tune --resume` with other options: the runtime ones apply, the others are refused in one
line naming them, before Ray starts or anything is written (no Ray needed here)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error, write_record
from digitsearch import api
from digitsearch.cli import app
from digitsearch.errors import UserError

runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def stored(tmp_path):
    """An experiment folder as far as the option check looks: its experiment.json."""
    return write_record(tmp_path / "results" / "old")


@pytest.mark.parametrize("extra, named", [
    (["--trials", "30"], "--trials cannot change (use --add-trials K for more trials)"),
    (["--max-epochs", "3", "--space", "mlp", "--seed", "4"], "--space, --max-epochs, --seed cannot change"),
    (["--trials", "12"], "--trials cannot change"),  # given explicitly, even at its default value
    (["--set", "lr=0.1", "--storage", "/tmp/elsewhere"], "--set, --storage cannot change"),
])
def test_options_resume_cannot_change_are_refused_in_one_line(stored, extra, named):
    before = {p.name: p.read_bytes() for p in stored.iterdir()}
    result = _invoke("tune", "--results", str(stored.parent), "--name", "old", "--resume", "--verbose", *extra)
    assert result.exit_code == 2, result.output
    line = assert_one_line_error(result.stderr, "--resume continues the stored search", named)
    refused = line.split("; ")[1].split(" cannot change")[0]
    assert "--verbose" not in refused and "--name" not in refused  # runtime options are not refused
    assert {p.name: p.read_bytes() for p in stored.iterdir()} == before  # nothing written


def test_runtime_options_pass_the_check(stored):
    # the check passes; what stops this run is the next one: a finished search needs --add-trials
    result = _invoke("tune", "--results", str(stored.parent), "--name", "old", "--resume", "--quiet")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "already finished its 2 trials; pass --add-trials K")


def test_the_python_api_refuses_them_too(stored):
    with pytest.raises(UserError, match=r"--max-epochs, --scheduler cannot change"):
        api.tune(results=stored.parent, name="old", resume=True, max_epochs=3, scheduler="fifo")
