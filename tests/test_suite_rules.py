"""The suite's own rules (docs/testing.md) catch what they are for: a unit that starts Ray or a
Python process fails, and the lint finds a clock in a gating test."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from lint_suite import clock_findings

from conftest import NotAUnit, tier_of


def test_a_unit_that_starts_ray_or_a_python_process_fails(request):
    import ray

    assert tier_of(request.node) == "unit"
    with pytest.raises(NotAUnit, match="mark it pytest.mark.e2e"):
        ray.init()
    with pytest.raises(NotAUnit, match="run_in_process"):
        subprocess.run([sys.executable, "-c", "pass"])
    assert subprocess.run(["true"]).returncode == 0  # other programs (git, shellcheck) run


GATING = '''
    import time
    import pytest

    def test_reads_the_clock():
        started = time.monotonic()
        assert started

    def test_asserts_a_duration(run):
        assert run["wall_s"] <= 20

    def test_plans_on_numbers(plan):
        assert plan.seconds <= 100  # a planned figure, not a measured one

    @pytest.mark.timing
    def test_timed(band):
        took = time.perf_counter()
        assert took < 5
'''


def test_the_lint_finds_a_clock_or_a_duration_outside_the_timing_tier(tmp_path):
    path = tmp_path / "test_planted.py"
    path.write_text(textwrap.dedent(GATING))
    findings = clock_findings(path, root=tmp_path)
    assert [line.split(":")[1].split()[1] for line in findings] == ["test_reads_the_clock", "test_asserts_a_duration"]
    module_timing = tmp_path / "test_all_timed.py"
    module_timing.write_text("import pytest, time\npytestmark = pytest.mark.timing\n\n"
                             "def test_x():\n    assert time.time() > 0\n")
    assert clock_findings(module_timing, root=tmp_path) == []
