"""`digitsearch bench`: its report (JSON + a markdown table of targets met or not), its
measurements' building blocks, and its bad input. The measured run itself is `make bench`."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import psutil
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error, run_in_process, write_record
from digitsearch.bench import measure
from digitsearch.bench import plan as bench_plan
from digitsearch.bench import report as bench_report
from digitsearch.bench import startup as bench_startup
from digitsearch.cli import app


def _report(**changes) -> dict:
    report = {
        "host": "box", "date": "2026-11-25 12:00", "quick": True, "bench_seconds": 90.0,
        "machine": {"cpus": 2, "python": "3.11", "torch": "2.14.1", "ray": "2.60.0", "cuda": False},
        "plan": {"dataset": "digits"}, "targets": bench_plan.TARGETS,
        "efficiency": [{"threads": 1, "bare_images_per_s": 2500, "trial_images_per_s": 2450, "ratio": 0.98},
                       {"threads": 2, "bare_images_per_s": 3000, "trial_images_per_s": 2700, "ratio": 0.9}],
        "overhead": {"trials": 4, "concurrency": 2, "wall_s": 7.3, "trials_own_s": 4.8, "ratio": 3.05,
                     "fixed_cost_per_trial_s": 2.46, "handovers": 2},
        "demo": {"search_s": 30.0, "bare_s": 25.0, "ratio": 1.2, "trials": 12, "epochs": 40, "concurrency": 2},
        "kept_up": {"first_command_s": 5.0, "later_command_s": 7.0},
        "scheduler": {"trials": 6, "max_epochs": 6, "dataset": "digits", "gap_points": 0.1, "epoch_share": 0.3,
                      "asha+optuna": {"best_val_acc": 0.95, "epochs": 12},
                      "fifo+random": {"best_val_acc": 0.951, "epochs": 40}},
        "startup": {"first_result_s": 15.0, "peak_rss_gb": 2.1, "phases_s": {"data_loaded": 3.0, "first_result": 15.0},
                    "at_peak_mb": {"ray::ImplicitFunc.train": 700.0, "digitsearch tune (driver)": 600.0}},
    }
    report.update(changes)
    return report


def test_the_markdown_table_says_which_targets_are_met():
    text = bench_report.markdown(_report())
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    met = {row.split(" | ")[0].lstrip("| "): row.rstrip(" |").split(" | ")[-1] for row in rows}
    assert len(rows) == 10
    assert met["trial efficiency, 1 thread(s)"] == "yes" and met["trial efficiency, 2 thread(s)"] == "**no**"
    assert met["fixed cost per trial (a slot's idle time between two trials)"] == "**no**"
    assert met["`make demo` search / bare Optuna + PyTorch loop (same configs, epochs, concurrency)"] == "yes"
    assert met["... on a Ray `digitsearch ray up` kept: first command / a later one"] == "**no**"  # 7 s > 6
    assert met["ASHA+TPE epochs / FIFO+random epochs"] == "yes"
    assert met["ASHA+TPE best val_acc vs FIFO+random"] == "yes"  # 0.1 points behind: within 0.2
    assert met["command start to first trial result"] == "**no**"
    assert met["peak memory (PSS) of the process tree, 2-trial search"] == "**no**"  # 2.1 GB > 1.5
    assert "`digitsearch bench --quick` (`make bench-quick`)" in text
    assert "data loaded 3.0 s, first result 15.0 s" in text and "ray::ImplicitFunc.train 700" in text


def test_a_fixed_cost_without_handovers_is_not_measurable_not_a_number():
    overhead = {**_report()["overhead"], "fixed_cost_per_trial_s": None, "handovers": 0}
    text = bench_report.markdown(_report(overhead=overhead))
    row = next(line for line in text.splitlines() if line.startswith("| fixed cost per trial"))
    assert "not measurable" in row and row.endswith("| - |")


def _trial_clocks(folder, spans: dict[str, tuple[float, float]]):
    """An experiment folder whose trials ran at these (started_at, ended_at) times."""
    write_record(folder, trials=len(spans))
    for trial_id, (start, end) in spans.items():
        trial = folder / "tune" / f"trial_{trial_id}"
        trial.mkdir(parents=True)
        mid = (start + end) / 2
        (trial / "progress.csv").write_text(f"epoch,started_at,ended_at\n1,{start},{mid}\n2,{start},{end}\n")
    return folder


def test_handover_gaps_are_a_slots_idle_time_between_two_trials(tmp_path):
    """Two slots: a and b open them; c takes the slot a freed at 10 (idle 0.2 s), d the one b
    freed at 12 (0.5 s); e started a hair before its slot's last result (clock jitter): 0, never
    negative."""
    folder = _trial_clocks(tmp_path / "exp", {"a": (0.0, 10.0), "b": (0.1, 12.0), "c": (10.2, 20.0),
                                              "d": (12.5, 22.0), "e": (19.99, 25.0)})
    assert measure.handover_gaps(folder, slots=2) == pytest.approx([0.2, 0.5, 0.0])
    assert measure.handover_gaps(folder, slots=5) == []


def test_the_report_is_written_as_json_and_markdown_named_by_host_and_date(tmp_path):
    path = bench_report.write(_report(), tmp_path, echo=lambda line: None)
    assert path == tmp_path / "box-2026-11-25-quick.md"
    assert json.loads((tmp_path / "box-2026-11-25-quick.json").read_text())["overhead"]["ratio"] == 3.05


def test_the_process_tree_memory_counts_the_children():
    me = psutil.Process(os.getpid())
    assert bench_startup._tree_rss(me) > 0.5 * me.memory_info().rss  # PSS: this process's share of its pages


def _own_images_per_second(config: dict, epochs: int) -> float:
    """The bare loop's work timed from outside: the same net and data, each epoch's wall time
    around the engine's call, the median of epochs 2.. (the first warms up)."""
    import torch

    from digitsearch import data
    from digitsearch.core import engine
    from digitsearch.core.build import build_model
    from digitsearch.core.config import TrialConfig

    bundle = data.load("digits", seed=0)
    cfg, (mean, std) = TrialConfig.from_flat(config, "cnn"), bundle.normalisation()
    # laid out as a trial lays it out (channels_last under bf16 on a CPU): without it this loop
    # timed a different computation, a third as fast on CI's CPU as the bare loop's
    model = engine.prepare_model(build_model(cfg, bundle, mean, std), torch.device("cpu"))
    train = engine.to_tensors(bundle.train.images, bundle.train.labels, mean, std)
    optimizer, generator = engine.make_optimizer(model, cfg.train), torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        engine.train_epoch(model, optimizer, train, cfg.train, generator)
        seconds.append(time.perf_counter() - start)
    return len(bundle.train) / statistics.median(seconds[1:])


@pytest.mark.timing
def test_the_bare_loop_measures_the_images_it_trains_per_second(band):
    """Its images/s is the digits' train split over an epoch's time: it agrees with the same work
    timed from outside (within the noise of a shared machine), at least half its timed epochs fit
    in its wall time, and a net with 8x the multiply-adds measures under half as fast."""
    from digitsearch import data

    keras = measure.keras_convnet()
    images = len(data.load("digits", seed=0).train)
    start = time.perf_counter()
    speed = measure.bare_images_per_second("digits", keras, threads=1, epochs=3)
    wall = time.perf_counter() - start
    assert wall > images / speed  # of epochs 2 and 3, one took at least images/speed seconds
    ratio = speed / _own_images_per_second(keras, epochs=2)
    band("bare loop / the same work timed from outside", max(ratio, 1 / ratio), 3.0, "x")
    wide = dict(keras, **{"cnn.filters_1": 128, "cnn.filters_2": 128})
    band("8x the multiply-adds: speed against the Keras net's", measure.bare_images_per_second(
        "digits", wide, threads=1, epochs=2) / speed, 0.5, "x")


def test_the_full_bench_needs_mnist_10k(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--mnist", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "MNIST-10k", "--quick")


@pytest.mark.timing
def test_the_smallest_bench_measures_everything(tmp_path, band):
    """`digitsearch bench` end to end in its smallest form (real searches on the 8x8 digits):
    every field of the report is there and holds a measured number."""
    result = CliRunner().invoke(app, ["bench", "--smoke", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(next(tmp_path.glob("*-quick.json")).read_text())
    assert {"host", "date", "machine", "plan", "targets", "startup", "efficiency", "overhead", "scheduler",
            "bench_seconds"} <= set(report)
    assert [e["threads"] for e in report["efficiency"]] == [1]  # --smoke: 1 thread only
    assert all(e["bare_images_per_s"] > 0 and e["trial_images_per_s"] > 0 for e in report["efficiency"])
    overhead = report["overhead"]
    assert overhead["trials"] == 3 and overhead["wall_s"] > 0 and overhead["handovers"] == 1
    assert overhead["fixed_cost_per_trial_s"] >= 0
    band("fixed cost per trial (smoke bench)", overhead["fixed_cost_per_trial_s"], 5.0)
    demo = report["demo"]
    assert demo["trials"] == 2 and demo["search_s"] > 0 and demo["bare_s"] > 0 and demo["ratio"] > 0
    scheduler = report["scheduler"]
    assert 0 < scheduler["asha+optuna"]["best_val_acc"] <= 1 and scheduler["fifo+random"]["epochs"] == 2
    startup = report["startup"]
    assert 0 < startup["phases_s"]["data_loaded"] <= startup["phases_s"]["ray_up"] <= startup["first_result_s"]
    assert startup["peak_rss_gb"] > 0.2 and any(name.startswith("ray::") for name in startup["at_peak_mb"])
    assert "| command start to first trial result |" in (tmp_path / next(tmp_path.glob("*-quick.md")).name).read_text()


DRIVER = 'process 10:"python -m digitsearch.cli tune";_run_module_as_main (<frozen runpy>:198);' \
         'tune (digitsearch/cli/tune.py:85)'
WORKER = 'process 10:"";process 12:"ray::ImplicitFunc.train";Thread._bootstrap (threading.py:1002)'
# py-spy's raw format: one whole stack per line, frames joined by ";", then the sample count
RAW_PROFILE = "\n".join([
    f"{DRIVER};run_search (digitsearch/search/runner.py:45);connect (digitsearch/search/session.py:40);"
    "init (ray/_private/worker.py:1500) 100",
    f"{DRIVER};run_search (digitsearch/search/runner.py:46);load_data (digitsearch/search/rounds.py:30) 25",
    f"{WORKER};train_trial (digitsearch/search/trainable.py:120);train_epoch (digitsearch/core/engine.py:130) 50",
    f"{WORKER};train_trial (digitsearch/search/trainable.py:121);evaluate (digitsearch/core/engine.py:160) 10",
    'process 10:"";process 11:"raylet";main (raylet.cc:1) 999',
]) + "\n"


def test_the_profile_summary_keeps_the_driver_and_the_trial_workers(tmp_path):
    from digitsearch.bench import profile as bench_profile

    raw = tmp_path / "startup.raw"
    raw.write_text(RAW_PROFILE)
    summary = bench_profile.summarise(raw)
    driver, worker = dict(summary["driver"]), dict(summary["trial worker"])
    assert driver["run_search (digitsearch/search/runner.py)"] == 2.5  # 125 samples at 50 Hz, line numbers merged
    assert driver["init (ray/_private/worker.py)"] == 2.0
    assert driver["load_data (digitsearch/search/rounds.py)"] == 0.5
    assert worker == {"train_trial (digitsearch/search/trainable.py)": 1.2,
                      "train_epoch (digitsearch/core/engine.py)": 1.0,
                      "evaluate (digitsearch/core/engine.py)": 0.2}  # Ray's raylet and Python's plumbing left out
    text = bench_profile.markdown(summary, "digitsearch tune --trials 2")
    assert "| 2.0 | `init (ray/_private/worker.py)` |" in text and "## trial worker" in text


def test_the_profile_needs_py_spy(monkeypatch, tmp_path):
    from digitsearch.bench import profile as bench_profile
    from digitsearch.errors import UserError

    monkeypatch.setattr(bench_profile.shutil, "which", lambda name: None)
    monkeypatch.setattr(bench_profile.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(UserError, match="pip install py-spy"):
        bench_profile.py_spy()


@pytest.mark.timing
def test_the_baseline_trains_the_recipe_net_for_its_time_and_tests_it(tmp_path, band):
    from conftest import run_cli

    ran = run_cli("bench", "--baseline", "20s", "--dataset", "digits", "--out", str(tmp_path), timeout=120)
    if ran.returncode == 2:  # a machine too busy for one epoch in 20 s: refused up front, in one line
        assert_one_line_error(ran.stderr, "give it more time")
        return
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads((tmp_path / "baseline-digits-20s-seed0.json").read_text())
    band("bench --baseline 20s: its wall time", result["wall_s"], 20 * 1.03 + 1)
    assert result["epochs"] >= 1
    assert result["config"]["cnn.convs"] == 2 and result["config"]["flip"] is False  # digits are not mirror-safe
    # every planned epoch ran and was shown, and the accuracy printed is the one recorded
    assert f"epoch {result['epochs']}/{result['planned_epochs']}:" in ran.stdout
    assert f"test accuracy {result['test_accuracy']:.4f} on {result['test_images']} images" in ran.stdout
    if result["epochs"] >= 6:  # idle, 20 s buy 8 one-cycle epochs (0.99); on a busy machine 2-3: near chance
        assert result["test_accuracy"] > 0.8  # one strong net on the 8x8 digits


def test_a_bad_baseline_duration_is_one_line():
    ran = run_in_process("bench", "--baseline", "soon")
    assert ran.returncode == 2
    assert_one_line_error(ran.stderr, "soon")


# --- bench --fidelity: which ASHA settings find the best sampled config in a given time ---------


def test_fidelity_settings_parse_and_bad_ones_are_one_line():
    from digitsearch.bench import fidelity

    assert fidelity.parse_settings("1x4, 2x3") == [fidelity.Setting(1, 4), fidelity.Setting(2, 3)]
    for bad, needle in (("1x1", "reduction >= 2"), ("0x3", "grace >= 1"), ("two", "GRACExREDUCTION"),
                        ("2x3,2x3", "twice")):
        ran = run_in_process("bench", "--fidelity", "1m", "--settings", bad)
        assert ran.returncode == 2, (bad, ran.stdout, ran.stderr)
        assert_one_line_error(ran.stderr, needle)
    for args, needle in ((["--settings", "1x4"], "--settings goes with --fidelity"),
                         (["--fidelity", "1m", "--baseline", "1m"], "one at a time"),
                         (["--fidelity", "soon"], "soon"),
                         (["--fidelity", "1m", "--dataset", "no-such-data"], "no-such-data")):
        ran = run_in_process("bench", *args)
        assert ran.returncode == 2, (args, ran.stdout, ran.stderr)
        assert_one_line_error(ran.stderr, needle)


def test_the_fidelity_space_is_the_cnn_space_without_its_starting_points(tmp_path):
    from digitsearch import spaces
    from digitsearch.bench import fidelity

    shipped, sampled_only = spaces.load("cnn"), spaces.load(fidelity.space_without_starting_points(tmp_path))
    assert shipped.starting_points and not sampled_only.starting_points
    assert sampled_only.family == "cnn" and sampled_only.params == shipped.params


def test_a_fidelity_run_is_summarised_from_its_leaderboard():
    import pandas as pd

    from digitsearch.bench import fidelity

    table = pd.DataFrame({"trial_id": ["a", "b", "c", "d", "e"],
                          "status": ["completed", "stopped early", "time limit", "over budget", "stopped early"],
                          "val_acc": [0.97, 0.95, 0.98, 0.0, 0.90], "epochs": [15, 4, 9, 0, 1],
                          "n_params": [1000, 2000, 3000, 4000, 5000]})
    assert fidelity.summarize(table, max_epochs=15) == {
        "trials": 5, "trained": 4, "full_length": 1, "stopped_by_asha": 2, "epochs_trained": 29,
        "best_val_acc": 0.98, "best_trial": "c", "best_epochs": 9, "best_params": 3000}
    nothing = fidelity.summarize(table[table["status"] == "over budget"], max_epochs=15)
    assert nothing["trained"] == 0 and nothing["best_val_acc"] is None
    row = {"grace": 1, "reduction": 4, "search_s": 60.0, **nothing}
    markdown = fidelity.markdown({"dataset": "digits", "time_limit_s": 60, "max_epochs": 15, "space": "cnn",
                                  "date": "2026-12-02", "runs": [row]})
    assert "| 1 x 4 | - |" in markdown and "noise" in markdown


@pytest.mark.timing
def test_a_short_fidelity_run_on_the_digits_writes_its_table(tmp_path, band):
    from conftest import run_cli

    ran = run_cli("bench", "--fidelity", "45s", "--settings", "1x4", "--dataset", "digits", "--out", str(tmp_path),
                  timeout=240)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    result = json.loads((tmp_path / "fidelity-digits-45s.json").read_text())
    (run,) = result["runs"]
    assert (run["grace"], run["reduction"]) == (1, 4) and run["trials"] >= 1
    band("bench --fidelity 45s: the search's wall time (its Ray start counts in it)", run["search_s"], 45 * 1.03 + 20)
    assert (tmp_path / "fidelity-digits-45s.md").read_text().count("| 1 x 4 |") == 1
    assert "fidelity: grace 1 x 4: " in ran.stdout
    assert "\n  [1] " in ran.stdout  # each finished trial shows while the run goes on


def test_a_py_spy_that_waits_on_after_the_search_is_told_to_stop_and_its_samples_kept(tmp_path, monkeypatch):
    """py-spy once waited on a ptrace-stopped Ray worker after the search had ended: past
    RECORD_TIMEOUT_S it gets SIGINT, on which it writes what it sampled."""
    import stat

    from digitsearch.bench import profile as bench_profile

    # like py-spy: writes its -o file on SIGINT; here it never ends by itself. Python, not bash: a
    # shell cannot trap a SIGINT it was started ignoring (pytest run in the background)
    fake = tmp_path / "py-spy"
    fake.write_text(f"#!{sys.executable}\n"
                    "import signal, sys, time\n"
                    "out = sys.argv[sys.argv.index('-o') + 1]\n"
                    "def stop(*_):\n"
                    "    open(out, 'w').write('x;y 1\\n')\n"
                    "    sys.exit(1)\n"
                    "signal.signal(signal.SIGINT, stop)\n"
                    "while True:\n"
                    "    time.sleep(0.1)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(bench_profile, "py_spy", lambda: str(fake))
    monkeypatch.setattr(bench_profile, "RECORD_TIMEOUT_S", 2)
    raw = tmp_path / "startup.raw"
    bench_profile.record(["true"], raw)
    assert raw.read_text() == "x;y 1\n" and os.path.getsize(raw) > 0


def test_the_gpu_check_refuses_a_machine_without_a_gpu_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: `make gpu-check` runs the check itself")
    ran = run_in_process("bench", "--gpu", "--out", str(tmp_path / "out"))
    assert ran.returncode == 2 and "no CUDA GPU" in ran.stderr and "Traceback" not in ran.stderr
    assert not (tmp_path / "out").exists()


def test_the_gpu_check_s_checkpoint_round_trip_holds_on_the_cpu(tmp_path):
    """The check's own code, on the device this machine has: what it compares does compare equal."""
    from digitsearch.bench import gpu_check

    row = gpu_check.checkpoint_round_trip(tmp_path, device="cpu")
    assert row.ok and row.figures == {"weights": True, "stream": True, "predictions": True}


def test_the_gpu_checks_table(tmp_path):
    from digitsearch.bench import gpu_check

    rows = [gpu_check.Row("visibility", True, {"0 GPU": "cpu"}), gpu_check.Row("syncs", False, {"per_batch": 3.0},
                                                                                "a note")]
    written = gpu_check.write(rows, tmp_path)
    text = written.read_text()
    assert "| visibility | ok | 0 GPU cpu |  |" in text and "| syncs | FAILED | per_batch 3.0 | a note |" in text
    assert json.loads(written.with_suffix(".json").read_text())[1]["ok"] is False
