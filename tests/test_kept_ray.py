"""Where a kept-up Ray (`digitsearch ray up`) is found, and its state file: no Ray started."""
from __future__ import annotations

import json

from digitsearch.search import local_ray
from digitsearch.store import kept_ray


def test_the_kept_up_ray_is_found_only_where_its_state_file_says(tmp_path, monkeypatch):
    monkeypatch.setenv(kept_ray.STATE_FILE_ENV, kept_ray.NOT_KEPT)
    assert kept_ray.state_file() is None and local_ray.kept_up() is None
    stale = tmp_path / "ray.json"
    stale.write_text(json.dumps({"address": "127.0.0.1:9", "token": "x", "pid": 2 ** 22 - 1, "started": 0,
                                 "temp_dir": str(tmp_path)}))
    monkeypatch.setenv(kept_ray.STATE_FILE_ENV, str(stale))
    assert local_ray.kept_up() is None and not stale.exists()  # a Ray long gone: its file is removed


def test_the_state_file_is_only_ever_its_owners(tmp_path):
    """The token in it lets a reader run code in that Ray: written 600, also over an older 644 file."""
    path = tmp_path / "ray.json"
    path.write_text("{}")
    path.chmod(0o644)
    kept = kept_ray.KeptUp(address="127.0.0.1:1", token="t", pid=1, started=0.0, temp_dir=str(tmp_path))
    kept_ray.write_state(path, kept)
    assert oct(path.stat().st_mode)[-3:] == "600" and kept_ray.read_state(path) == kept
