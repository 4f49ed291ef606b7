"""A cluster on another Ray or Python is one line naming both sides (not "cannot reach"), and the
private local Ray's token file is the user's alone."""
from __future__ import annotations

import stat

import pytest
import ray
import tomllib
from packaging.requirements import Requirement
from ray._private.utils import check_version_info

from conftest import ROOT
from digitsearch.errors import UserError
from digitsearch.search import ray_versions, session
from digitsearch.store import ray_token


def _ray_says(ray_version: str, python_version: str) -> RuntimeError:
    """The error Ray's own check raises for a cluster started on these versions."""
    with pytest.raises(RuntimeError) as raised:
        check_version_info({"ray_version": ray_version, "python_version": python_version}, "node 10.0.0.9")
    return raised.value


def test_the_ray_range_read_back_is_pyprojects():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_line = next(Requirement(line) for line in declared if line.startswith("ray["))
    assert ray_versions.supported() == ray_line.specifier


def test_a_cluster_on_a_ray_outside_the_range_is_one_line_naming_both(monkeypatch):
    monkeypatch.setattr(ray, "init", lambda **_: (_ for _ in ()).throw(_ray_says("2.54.0", "3.11.2")))
    with pytest.raises(UserError) as err:
        session.connect("10.0.0.9:6379", verbose=False)
    line = str(err.value)
    assert "\n" not in line and "cannot reach" not in line
    assert "runs Ray 2.54.0 on Python 3.11.2" in line and f"this machine Ray {ray.__version__}" in line
    assert "digitsearch works with ray>=" in line and "not 2.54.0" in line


def test_a_cluster_on_another_python_names_the_versions_to_use(monkeypatch):
    monkeypatch.setattr(ray, "init", lambda **_: (_ for _ in ()).throw(_ray_says(ray.__version__, "3.10.1")))
    with pytest.raises(UserError) as err:
        session.connect("10.0.0.9:6379", verbose=False)
    assert str(err.value).endswith(f"an environment with Ray {ray.__version__} and Python 3.10.1")


def test_other_errors_are_not_read_as_a_version_mismatch():
    assert ray_versions.mismatch_line("h:1", "Failed to connect to GCS within 60 seconds") is None


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_private_rays_token_file_is_written_for_the_user_alone(home):
    path = ray_token.keep_token_private()
    assert path == home / ".ray" / "auth_token"
    assert _mode(path) == 0o600 and len(path.read_text()) == 64
    assert _mode(path.parent) == 0o700


def test_a_token_file_others_could_read_is_narrowed_and_kept(home):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("users-own-token")
    (home / ".ray" / "auth_token").chmod(0o644)
    path = ray_token.keep_token_private()
    assert _mode(path) == 0o600 and path.read_text() == "users-own-token"


@pytest.mark.parametrize("setting", [("RAY_AUTH_TOKEN", "abc"), ("RAY_AUTH_TOKEN_PATH", "/elsewhere"),
                                     ("RAY_AUTH_MODE", "disabled")])
def test_a_token_the_user_placed_or_turned_off_is_left_alone(home, monkeypatch, setting):
    monkeypatch.setenv(*setting)
    assert ray_token.keep_token_private() is None
    assert not (home / ".ray").exists()
