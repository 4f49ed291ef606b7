"""A non-editable install must carry every module, the YAML spaces and the SLURM template."""
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.mark.e2e
def test_wheel_ships_the_search_spaces(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("digitsearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "digitsearch/search_spaces/cnn.yaml" in names
    assert "digitsearch/search_spaces/README.md" in names
    assert "digitsearch/search_spaces/training/images.yaml" in names  # the shared training block
    assert "digitsearch/launch/templates/slurm.sh.j2" in names
    # every module of the tree: a package left out of pyproject's list would be missing here
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "digitsearch").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert any(n.endswith("entry_points.txt") for n in names)


@pytest.mark.e2e
def test_installed_wheel_finds_its_spaces_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("digitsearch-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import digitsearch, digitsearch.spaces as s; from digitsearch.launch.slurm import slurm_script; "
            "assert str(digitsearch.__file__).startswith(%r), digitsearch.__file__; "
            "assert slurm_script(['tune'], nodes=1, cpus_per_node=1, gpus_per_node=0, time='01:00').startswith('#!'); "
            "print(digitsearch.__version__, sorted(s.list_spaces()), s.load('cnn').family)" % str(target))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'cnn'" in out.stdout and out.stdout.strip().endswith("cnn")
    assert out.stdout.startswith("0.")  # __version__ from the installed package's metadata
