"""The documentation stays true: every `digitsearch ...` command in a code block of README.md,
docs/ and results/README.md parses with the real CLI (options exist, values have their types),
and the Python API page's example runs as written."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from conftest import ROOT, write_kaggle_csv
from digitsearch.cli import app

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "results" / "README.md"]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def code_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


def commands(path: Path) -> list[str]:
    """Each `digitsearch ...` line of the file's code blocks, continuation lines joined."""
    found = []
    for block in code_blocks(path):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith("digitsearch "):
                found.append(line)
    return found


def _without_comment(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split, lexer.commenters = True, "#"
    words = list(lexer)
    for stop in ("&&", "||", ";", "|"):  # `digitsearch ... && kubectl ...`: the first command only
        if stop in words:
            words = words[: words.index(stop)]
    return words[1:]


def parse(args: list[str]) -> None:
    """Parse as the CLI would, without running anything: a usage error raises."""
    command = get_command(app)
    context = command.make_context("digitsearch", list(args))
    while hasattr(command, "resolve_command") and (context._protected_args or context.args):
        name, command, rest = command.resolve_command(context, context._protected_args + context.args)
        context = command.make_context(name, rest, parent=context)


DOCUMENTED = [(path.relative_to(ROOT).as_posix(), line) for path in DOCUMENTS if path.is_file()
              for line in commands(path)]


def test_the_documents_show_commands():
    assert len(DOCUMENTED) >= 30, DOCUMENTED
    assert {"README.md", "docs/commands.md"} <= {where for where, _ in DOCUMENTED}


@pytest.mark.parametrize("where, line", DOCUMENTED, ids=[f"{w}: {c[:60]}" for w, c in DOCUMENTED])
def test_every_documented_command_parses(where, line):
    parse(_without_comment(line))


def test_a_misspelled_option_would_be_caught():
    with pytest.raises(Exception, match="--trails"):
        parse(["tune", "--trails", "3"])
    with pytest.raises(Exception, match="valid integer"):
        parse(["cluster", "slurm", "--nodes", "many", "--", "tune"])


@pytest.mark.extended
@pytest.mark.e2e
def test_the_python_api_example_runs_as_written(tmp_path, digits_bundle):
    """docs/python-api.md's example, in a fresh process, on Kaggle-format files of the digits."""
    (example,) = [block for block in code_blocks(ROOT / "docs" / "python-api.md") if "import digitsearch" in block]
    write_kaggle_csv(tmp_path / "train.csv", digits_bundle.train.images, digits_bundle.train.labels)
    write_kaggle_csv(tmp_path / "test.csv", digits_bundle.test.images[:100], None)
    run = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (folder,) = (tmp_path / "results").iterdir()
    assert (folder / "final" / "model.pt").is_file() and (folder / "leaderboard.csv").is_file()
    assert f"{folder / 'final' / 'model.pt'} 100" in run.stdout  # the print of the submission's rows
