"""A bad space or --set is refused before the search: one `error:` line naming the key, what
it may be and where it is written (the YAML line or the --set), exit 2, nothing written, Ray
never started. Only a genuine property of one net (InvalidArchitecture) is left to its trial."""
from __future__ import annotations

import pytest
import yaml

from conftest import assert_one_line_error, run_in_process
from digitsearch import spaces
from digitsearch.errors import UserError
from digitsearch.search import validate

GOOD = {
    "family": "cnn",
    "training": "images",
    "params": {
        "cnn.depth": {"type": "int", "low": 1, "high": 2},
        "cnn.filters_1": {"type": "choice", "values": [8, 16]},
        "cnn.filters_2": {"type": "choice", "values": [8, 16], "when": "cnn.depth >= 2"},
        "cnn.kernel": {"type": "choice", "values": [3, 5]},
    },
    "start": [{"cnn.depth": 1, "cnn.kernel": 3}],
}


def _for_digits(space):
    """The space as a search on the digits runs it: preflight fixes flip off (not mirror-safe)."""
    from digitsearch.search import preflight

    return preflight.check(space, "image", "digits", lambda line: None, mirror_safe=False)


def write_space(tmp_path, edit=None, name="space.yaml"):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    if edit:
        edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def line_of(path, key: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip().startswith(f"{key}:"))


def refused(path, overrides=None) -> str:
    space = spaces.load(str(path))
    if overrides:
        space = space.fixed(overrides)
    with pytest.raises(UserError) as err:
        validate.check_space(space, overrides or {})
    return str(err.value)


def rename(old, new):
    def edit(data):
        data["params"] = {new if k == old else k: v for k, v in data["params"].items()}
        data["start"] = [{new if k == old else k: v for k, v in p.items()} for p in data["start"]]
    return edit


def test_a_good_space_and_every_builtin_one_pass(tmp_path, digits_bundle):
    space = spaces.load(str(write_space(tmp_path)))
    configs = validate.check_space(space)
    assert len(configs) == 1 + validate.SAMPLES_PER_FAMILY
    assert configs[0]["cnn.kernel"] == 3 and configs[0]["cnn.depth"] == 1  # the starting point, filled in
    validate.check_builds(_for_digits(space), configs, digits_bundle)
    for name in spaces.list_spaces():
        if name != "seq2seq":
            builtin = spaces.load(name)
            validate.check_builds(_for_digits(builtin), validate.check_space(builtin), digits_bundle)


def test_a_kwarg_the_family_does_not_take_names_its_yaml_line(tmp_path):
    path = write_space(tmp_path, rename("cnn.kernel", "cnn.kernal"))
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, 'cnn.kernal')}: parameter 'cnn.kernal': ")
    assert "model family 'cnn' does not take kernal; it takes: depth, filters, pool, kernel," in message


def test_a_kwarg_of_the_wrong_type_names_the_indexed_key(tmp_path):
    def edit(data):
        data["params"]["cnn.filters_2"]["values"] = [8, "wide"]
    path = write_space(tmp_path, edit)
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, 'cnn.filters_2')}: parameter 'cnn.filters_2': ")
    assert "filters[1] must be a valid integer" in message and "not 'wide'" in message


@pytest.mark.parametrize("key, spec, needle", [
    ("batch_size", {"type": "choice", "values": [0, 32]}, "must be greater than or equal to 1, not 0"),
    ("momentum", {"type": "uniform", "low": 0.5, "high": 3.0}, "must be less than 1, not 3.0"),
    ("lr", {"type": "uniform", "low": -1.0, "high": 0.1}, "must be greater than 0, not -1.0"),
    ("optimizer", {"type": "choice", "values": ["sgd", "adagrad"]},
     "must be 'adam', 'adamw', 'rmsprop' or 'sgd', not 'adagrad'"),
    ("decay_every", 1.5, "must be a valid integer"),
    ("learning_rate", {"type": "loguniform", "low": 1e-4, "high": 1e-2},
     "is neither a model parameter (cnn.NAME) nor a training setting (optimizer, lr, momentum,"),
])
def test_a_training_value_out_of_bounds_or_a_misspelled_setting(tmp_path, key, spec, needle):
    path = write_space(tmp_path, lambda data: data["params"].update({key: spec}))
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, key)}: parameter '{key}': "), message
    assert needle in message


def test_a_set_of_the_wrong_type_names_the_set(tmp_path):
    path = write_space(tmp_path)
    assert refused(path, {"lr": "fast"}).startswith("--set lr=fast: parameter 'lr': must be a valid number")
    assert refused(path, {"cnn.kernel": "big"}).startswith(
        "--set cnn.kernel=big: parameter 'cnn.kernel': model family 'cnn': kernel must be a valid integer")


def test_a_config_that_does_not_build_is_refused_but_an_infeasible_net_is_left_to_its_trial(tmp_path, digits_bundle):
    bad = spaces.load(str(write_space(tmp_path, lambda d: d["params"].update({"cnn.dropout": 1.5}))))
    with pytest.raises(UserError, match=r"starting point 1 \{.*\} does not build: ValueError: dropout probability"):
        validate.check_builds(_for_digits(bad), validate.check_space(bad), digits_bundle)

    def deep(data):  # five 2x2 poolings of an 8x8 digit: some sampled nets pool the map to nothing
        data["params"]["cnn.depth"] = {"type": "int", "low": 1, "high": 5}
        for k in range(2, 6):
            data["params"][f"cnn.filters_{k}"] = {"type": "choice", "values": [8], "when": f"cnn.depth >= {k}"}
    infeasible = spaces.load(str(write_space(tmp_path, deep, "deep.yaml")))
    configs = validate.check_space(infeasible)
    assert any(c["cnn.depth"] >= 4 for c in configs)
    validate.check_builds(_for_digits(infeasible), configs, digits_bundle)  # no error


def test_the_shared_training_block_is_included_and_a_space_can_replace_one_entry():
    cnn, transfer = spaces.load("cnn"), spaces.load("transfer")
    block = spaces.BUILTIN_DIR / "training" / "images.yaml"
    for space in (cnn, transfer):
        trained = [p.name for p in space.entries if "." not in p.name]
        assert trained == ["optimizer", "lr", "momentum", "weight_decay", "batch_size", "schedule", "lr_decay",
                           "decay_every", "warmup", "label_smoothing", "augment", "erasing", "flip", "balance"]
    assert next(p for p in cnn.entries if p.name == "balance").where == f"{block}:{line_of(block, 'balance')}"
    lr = next(p for p in transfer.entries if p.name == "lr")
    assert lr.low == 1e-4 and lr.where.startswith(str(transfer.path) + ":")  # transfer's own, in the block's place


def test_a_bad_training_block_is_one_line(tmp_path):
    path = write_space(tmp_path, lambda d: d.update(training="imagez"))
    with pytest.raises(UserError, match="training block 'imagez' not found; built-in blocks are images"):
        spaces.load(str(path))
    (tmp_path / "mine.yaml").write_text("params:\n  cnn.depth: 2\n")
    path = write_space(tmp_path, lambda d: d.update(training="mine.yaml"), "with_mine.yaml")
    with pytest.raises(UserError, match=r"mine.yaml:2: parameter 'cnn.depth': a training block holds training "):
        spaces.load(str(path))


def test_the_cli_refuses_a_typo_before_anything_is_written_or_a_search_starts(tmp_path):
    path = write_space(tmp_path, rename("cnn.kernel", "cnn.kernal"))
    results = tmp_path / "results"
    run = run_in_process("tune", "--space", str(path), "--trials", "2", "--results", str(results))
    assert run.returncode == 2
    assert_one_line_error(run.stderr, "parameter 'cnn.kernal'", "does not take kernal")
    assert not results.exists()
    assert "ray" not in run.stdout.lower()  # no "search:" line
    run = run_in_process("tune", "--space", str(write_space(tmp_path, name="ok.yaml")), "--set", "lr=fast",
                         "--results", str(results))
    assert run.returncode == 2 and not results.exists()
    assert_one_line_error(run.stderr, "--set lr=fast: parameter 'lr': must be a valid number")
