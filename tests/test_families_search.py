"""Every image family's own space searched through the real command line (tiny: 2 trials of
1 epoch on the bundled digits), the transfer family from a saved state dict and from scratch,
plus the bad pairings that must end in one line before Ray starts. The other tasks and the
space across families: test_tasks_search.py (two files, so two test workers share them)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, run_cli, run_in_process
from conftest import tiny_search_in_process as tiny_search
from digitsearch import models
from digitsearch.final import export

IMAGE_FAMILIES = ["lenet", "vgg", "resnet", "lstm"]


pytestmark = [pytest.mark.e2e, pytest.mark.extended, pytest.mark.usefixtures("ray_per_file")]  # one Ray


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_each_image_family_space_searches(family, tmp_path):
    table, _ = tiny_search(tmp_path, family, "--space", family, "--dataset", "digits")
    assert set(table["family"]) == {family}
    trained = table[table["status"].isin(["completed", "stopped early"])]
    # one epoch on 1,150 digits proves the pipeline, not the net: a trained trial has a real
    # validation accuracy and its best epoch's checkpoint on disk
    assert len(trained) >= 1 and trained["val_acc"].between(0, 1).all(), table.to_string()
    assert all((tmp_path / family / "tune").glob("trial_*/checkpoint_*/model.pt"))
    assert trained["checkpoint"].map(lambda p: (Path(p) / "model.pt").is_file()).all()
    assert any(c.startswith(f"{family}.") for c in table.columns)


def _saved_mobilenet(path):
    model = models.create("transfer", backbone="mobilenet_v3_small", init="scratch", input_size=32)
    torch.save(model.state_dict(), path)
    return model


def test_transfer_space_from_a_saved_state_dict(tmp_path):
    saved = _saved_mobilenet(tmp_path / "pretrained.pt")
    table, _ = tiny_search(tmp_path, "from-checkpoint", "--space", "transfer", "--dataset", "digits",
                           "--set", f"transfer.init=checkpoint:{tmp_path / 'pretrained.pt'}",
                           "--set", "transfer.backbone=mobilenet_v3_small", "--set", "transfer.input_size=32")
    assert set(table["transfer.init"]) == {f"checkpoint:{(tmp_path / 'pretrained.pt').resolve()}"}
    assert (table["status"].isin(["completed", "stopped early"])).all(), table.to_string()
    # the retrained model starts from the same file and exports without needing it again
    run = run_in_process("best", "--results", str(tmp_path), "--name", "from-checkpoint", "--retrain", "--epochs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    (tmp_path / "pretrained.pt").unlink()
    model, meta = export.load_model(tmp_path / "from-checkpoint" / "final" / "model.pt")
    assert meta["model_args"]["init"] == "scratch" and meta["family"] == "transfer"
    assert saved is not None and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_transfer_space_from_scratch(tmp_path):
    table, _ = tiny_search(tmp_path, "scratch", "--space", "transfer", "--dataset", "digits",
                           "--set", "transfer.init=scratch", "--set", "transfer.backbone=mobilenet_v3_small",
                           "--set", "transfer.input_size=32")
    assert set(table["transfer.init"]) == {"scratch"}
    assert "transfer.freeze" not in table.columns  # freeze only applies to pretrained weights
    assert (table["status"].isin(["completed", "stopped early"])).all(), table.to_string()





def test_datasets_stats_prints_counts_and_writes_a_chart(tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "digits.png"
    run = run_cli("datasets", "--stats", "digits", "--out", str(out), timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["train", "val", "test", "total"] and lines[1].split() == ["class"]
    totals = [int(line.split()[-1]) for line in lines[2:12]]
    assert sum(totals) == 1797
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 300
    run = run_cli("datasets", "--stats", "numbers", "--base", "nowhere-digits", timeout=120)
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "nowhere-digits")
