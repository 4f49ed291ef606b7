"""The suite's own rules, checked by `make lint` before any test runs (docs/testing.md):

- no test outside the timing tier reads a clock or asserts a duration: a wall-clock figure
  measures the machine's neighbours as much as the code, so it belongs to `make check-timing`;
- nothing stands at the top of the checkout that the layout does not name (a test once wrote a
  file called `-o` there, and it was committed).

Exit 0 when both hold; otherwise one line per finding and exit 1.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {".ci", ".gitignore", "Makefile", "README.md", "cli.py", "digitsearch", "docs", "pyproject.toml",
             "results", "search_spaces", "tests"}
CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns", "time_ns"}
# an assertion that a measured duration stays under a number: `took <= 20`, `run["wall_s"] <= 45`
DURATION_ASSERT = re.compile(r"assert .*\b(wall|took|elapsed|\w*wall_s|\w*search_s)\b[\]\"']* *(<|<=) *[0-9(]")


def _marks(decorators: list[ast.expr]) -> set[str]:
    """The pytest.mark names among a function's decorators (or in a pytestmark value)."""
    names = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                names.add(sub.attr)
    return names


def _module_marks(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            return _marks([node.value])
    return set()


def _reads_a_clock(function: ast.FunctionDef) -> bool:
    """Whether the function calls time.monotonic(), time.perf_counter(), time.time() or the like."""
    for node in ast.walk(function):
        called = node.func if isinstance(node, ast.Call) else None
        if (isinstance(called, ast.Attribute) and called.attr in CLOCKS and isinstance(called.value, ast.Name)
                and called.value.id == "time"):
            return True
    return False


def clock_findings(path: Path, root: Path = ROOT) -> list[str]:
    """Each test function outside the timing tier that reads a clock or asserts a duration."""
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    module_timing = "timing" in _module_marks(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
            continue
        if module_timing or "timing" in _marks(node.decorator_list):
            continue
        where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
        if _reads_a_clock(node):
            found.append(f"{where}: reads a clock; mark it pytest.mark.timing (make check-timing) or inject one")
        body = lines[node.lineno - 1:node.end_lineno]
        if any(DURATION_ASSERT.search(line) for line in body):
            found.append(f"{where}: asserts a duration; mark it pytest.mark.timing (make check-timing)")
    return found


def stray_top_level() -> list[str]:
    """Tracked names at the top of the checkout that the layout does not name."""
    run = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        return []  # not a git checkout (an unpacked sdist): nothing to compare
    names = {line.split("/", 1)[0] for line in run.stdout.splitlines() if line}
    return [f"{name}: tracked at the top of the checkout but not in the layout (tests/lint_suite.py TOP_LEVEL)"
            for name in sorted(names - TOP_LEVEL)]


def main() -> int:
    findings = stray_top_level()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        findings += clock_findings(path)
    for line in findings:
        print(f"lint_suite: {line}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
