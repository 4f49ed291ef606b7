"""`digitsearch cluster slurm|kuberay`: the printed sbatch script and RayJob manifest, and bad input.

In-process (Typer's CliRunner) plus `bash -n` and shellcheck; no Ray starts, no SLURM or
Kubernetes is needed.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from conftest import assert_one_line_error, run_cli
from digitsearch.cli import app
from digitsearch.errors import UserError
from digitsearch.launch.checks import tune_command
from digitsearch.launch.slurm import slurm_script, slurm_time

runner = CliRunner()
TUNE = ["tune", "--space", "cnn", "--trials", "20", "--name", "it's \"a\" $HOME; run"]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def slurm(*options: str, tune=TUNE) -> str:
    result = invoke("cluster", "slurm", *options, "--", *tune)
    assert result.exit_code == 0, result.output
    return result.stdout


def kuberay(*options: str, tune=TUNE) -> dict:
    result = invoke("cluster", "kuberay", "--image", "registry.example.com/digitsearch:1.0", *options, "--", *tune)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def expect_error(*args: str, needles=()) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    return assert_one_line_error(result.stderr, *needles)


def search_line(script: str) -> str:
    lines = [line for line in script.splitlines() if line.startswith("digitsearch tune")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("options", [
    ("--nodes", "4", "--gpus-per-node", "2", "--cpus-per-node", "16", "--time", "36:30", "--partition", "gpu"),
    ("--nodes", "1", "--setup", "module load python/3.11", "--setup", "source .venv/bin/activate"),
])
def test_slurm_script_is_valid_bash(tmp_path, options):
    path = tmp_path / "job.sh"
    path.write_text(slurm(*options))
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    if shutil.which("shellcheck") is None:
        # .ci/run installs it (Debian's shellcheck): on CI a missing one is a failure, not a skip
        assert not os.environ.get("CI"), "shellcheck is not installed; .ci/run should have installed it"
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    # warnings and errors; shellcheck's info notes are about the user's own words (--setup lines, the
    # quoted search arguments), which the script passes on as they are
    linted = subprocess.run(["shellcheck", "--severity=warning", "--shell=bash", str(path)],
                            capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_slurm_script_is_a_template_file_in_the_package():
    from importlib.resources import files

    template = files("digitsearch.launch") / "templates" / "slurm.sh.j2"
    text = template.read_text()
    assert text.count("{{ search }}") == 1 and "srun" in text
    script = slurm("--nodes", "3")
    assert "{{" not in script and "{%" not in script and "<#--" not in script  # every placeholder filled


def test_slurm_script_names_resources_ports_and_search():
    script = slurm("--nodes", "4", "--gpus-per-node", "2", "--cpus-per-node", "16", "--time", "36:30",
                   "--partition", "gpu", "--job-name", "mnist-big")
    assert script.startswith("#!/bin/bash\n")
    directives = re.findall(r"^#SBATCH (\S+)$", script, flags=re.M)
    for wanted in ("--nodes=4", "--ntasks-per-node=1", "--cpus-per-task=16", "--gpus-per-node=2",
                   "--time=36:30:00", "--partition=gpu", "--job-name=mnist-big"):
        assert wanted in directives, (wanted, directives)
    assert 'head_address="$head_ip:$port"' in script
    assert "port=6379" in script and "dashboard_port=8265" in script
    head = re.search(r"srun [^\n]*-w \"\$head_node\" \\\n\s+ray start --head [^\n]*\n[^\n]*", script)
    assert head, script
    assert "--port=6379" in head.group(0) and "--dashboard-port=8265" in head.group(0)
    assert '--node-ip-address="$head_ip"' in head.group(0)
    assert "--num-cpus=16 --num-gpus=2 --block &" in head.group(0)
    worker = r'srun [^\n]*\n\s+ray start --address="\$head_address" --num-cpus=16 --num-gpus=2 --block &'
    assert re.search(worker, script)
    assert "expected_nodes=4" in script and "wait_timeout=300" in script
    assert shlex.join(["digitsearch", *TUNE]) + ' --address "$head_address"' == search_line(script)


def test_slurm_tune_arguments_round_trip_through_the_shell():
    words = shlex.split(search_line(slurm()))
    assert words == ["digitsearch", *TUNE, "--address", "$head_address"]


def test_slurm_options_reach_the_script():
    script = slurm("--port", "6380", "--dashboard-port", "8300", "--wait-timeout", "90", "--setup",
                   "source .venv/bin/activate", "--nodes", "1", "--time", "00:30")
    assert "--port=6380" in script and "--dashboard-port=8300" in script
    assert "wait_timeout=90" in script and "--time=00:30:00" in script
    assert "\nsource .venv/bin/activate\n" in script
    assert "--gpus-per-node" not in script and "--partition" not in script
    assert "--num-gpus=0" in script


def test_slurm_without_setup_says_where_to_activate():
    assert "#   source .venv/bin/activate" in slurm()


def test_output_writes_a_file_and_never_overwrites(tmp_path):
    path = tmp_path / "job.sh"
    result = invoke("cluster", "slurm", "--output", str(path), "--", *TUNE)
    assert result.exit_code == 0, result.output
    assert path.read_text().startswith("#!/bin/bash") and "sbatch" in result.stdout
    before = path.read_text()
    expect_error("cluster", "slurm", "--output", str(path), "--", *TUNE, needles=("already exists",))
    assert path.read_text() == before
    manifest = tmp_path / "job.yaml"
    result = invoke("cluster", "kuberay", "--image", "x:1", "--output", str(manifest), "--", "tune")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(manifest.read_text())["kind"] == "RayJob" and "kubectl apply" in result.stdout


def test_kuberay_manifest():
    manifest = kuberay("--workers", "3", "--cpus-per-worker", "6", "--gpus-per-worker", "1", "--memory", "12Gi",
                       "--job-name", "mnist-search", "--ttl", "120")
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayJob"
    assert manifest["metadata"]["name"] == "mnist-search"
    spec = manifest["spec"]
    assert shlex.split(spec["entrypoint"]) == ["digitsearch", *TUNE]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 120
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"] == {"dashboard-host": "0.0.0.0", "num-cpus": "0"}
    assert head["template"]["spec"]["containers"][0]["image"] == "registry.example.com/digitsearch:1.0"
    (group,) = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    (container,) = group["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/digitsearch:1.0"
    for kind in ("requests", "limits"):
        assert container["resources"][kind] == {"cpu": "6", "memory": "12Gi", "nvidia.com/gpu": "1"}


def test_kuberay_cpu_only_head_cpus_and_shared_volume():
    manifest = kuberay("--head-num-cpus", "2", "--pvc", "results", "--mount-path", "/data")
    head = manifest["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "2"
    (group,) = manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert group["replicas"] == 2
    pod = group["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"] and "tolerations" not in pod
    for template in (head["template"], group["template"]):
        assert template["spec"]["volumes"] == [{"name": "shared", "persistentVolumeClaim": {"claimName": "results"}}]
        assert template["spec"]["containers"][0]["volumeMounts"] == [{"name": "shared", "mountPath": "/data"}]


def test_kuberay_header_says_where_results_go():
    result = invoke("cluster", "kuberay", "--image", "x:1", "--", "tune")
    header = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert any("shared storage" in line and "--storage" in line for line in header), header


@pytest.mark.parametrize("args, needles", [
    (("cluster", "slurm", "--nodes", "0", "--", "tune"), ("--nodes", "greater than or equal to 1")),
    (("cluster", "slurm", "--cpus-per-node", "0", "--", "tune"), ("--cpus-per-node",)),
    (("cluster", "slurm", "--gpus-per-node", "-1", "--", "tune"), ("--gpus-per-node",)),
    (("cluster", "slurm", "--time", "2h", "--", "tune"), ("--time", "HH:MM")),
    (("cluster", "slurm", "--time", "01:75", "--", "tune"), ("--time",)),
    (("cluster", "slurm", "--time", "00:00", "--", "tune"), ("--time",)),
    (("cluster", "slurm", "--port", "70000", "--", "tune"), ("--port",)),
    (("cluster", "slurm", "--port", "12000", "--", "tune"), ("--port", "Ray")),
    (("cluster", "slurm", "--dashboard-port", "6379", "--", "tune"), ("differ",)),
    (("cluster", "slurm", "--job-name", "a b", "--", "tune"), ("--job-name",)),
    (("cluster", "slurm", "--partition", "gpu\nx", "--", "tune"), ("--partition",)),
    (("cluster", "slurm"), ("-- tune",)),
    (("cluster", "slurm", "--", "best", "--retrain"), ("tune", "best")),
    (("cluster", "slurm", "--", "tune", "--address", "1.2.3.4:6379"), ("--address",)),
    (("cluster", "slurm", "--", "tune", "--address=auto"), ("--address",)),
    (("cluster", "slurm", "--nodez", "3", "--", "tune"), ("--nodez",)),
    (("cluster", "kuberay", "--", "tune"), ("--image",)),
    (("cluster", "kuberay", "--image", "x:1"), ("-- tune",)),
    (("cluster", "kuberay", "--image", "x:1", "--workers", "0", "--", "tune"), ("--workers",)),
    (("cluster", "kuberay", "--image", "x:1", "--cpus-per-worker", "0", "--", "tune"), ("--cpus-per-worker",)),
    (("cluster", "kuberay", "--image", "x:1", "--memory", "8 gigs", "--", "tune"), ("--memory",)),
    (("cluster", "kuberay", "--image", "x:1", "--job-name", "My_Job", "--", "tune"), ("--job-name",)),
    (("cluster", "kuberay", "--image", "x:1", "--", "predict"), ("tune",)),
    (("cluster", "kuberay", "--image", "x:1", "--", "tune", "--address", "auto"), ("--address",)),
])
def test_bad_input_is_one_line(args, needles):
    expect_error(*args, needles=needles)


@pytest.mark.e2e
def test_a_typer_usage_error_through_the_real_command_line(tmp_path):
    """main() turns Typer's own errors (here a non-number) into one line with exit code 2 as well."""
    result = run_cli("cluster", "slurm", "--nodes", "x", "--", "tune", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result
    assert_one_line_error(result.stderr, "--nodes")


def test_library_builders_check_input_themselves():
    with pytest.raises(UserError, match="--nodes"):
        slurm_script(["tune"], nodes=0, cpus_per_node=1, gpus_per_node=0, time="01:00")
    assert slurm_time("1:05") == "01:05:00"
    assert tune_command(["tune", "--name", "a b"]) == "digitsearch tune --name 'a b'"
