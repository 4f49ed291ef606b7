"""Tests for digitsearch.spaces: the YAML format, validation and the Optuna glue."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import FixedTrial

from digitsearch import spaces
from digitsearch.errors import UserError
from digitsearch.spaces import Condition, Param, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A full set of values for a depth-2 CNN trial using sgd (so momentum is active).
DEPTH2 = {
    "cnn.depth": 2,
    "cnn.filters_1": 32,
    "cnn.filters_2": 64,
    "cnn.pool_1": "max",
    "cnn.pool_2": "avg",
    "cnn.kernel": 3,
    "cnn.convs": 2,
    "cnn.padding": "same",
    "cnn.batchnorm": True,
    "cnn.conv_dropout": 0.1,
    "cnn.head": "gap",
    "cnn.dense_layers": 1,
    "cnn.dense_1": 128,
    "cnn.dropout": 0.25,
    "optimizer": "sgd",
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-5,
    "batch_size": 64,
    "schedule": "step",
    "lr_decay": 0.94,
    "decay_every": 2,
    "label_smoothing": 0.05,
    "augment": "light",
    "erasing": 0.25,
    "flip": False,
    "balance": "none",
}

CNN_NAMES = {
    "cnn.depth", "cnn.kernel", "cnn.convs", "cnn.padding", "cnn.batchnorm", "cnn.conv_dropout", "cnn.head",
    "cnn.dense_layers", "cnn.dropout", "optimizer", "lr", "momentum", "weight_decay", "batch_size",
    "schedule", "lr_decay", "decay_every", "warmup", "label_smoothing", "augment", "erasing", "flip", "balance",
    *(f"cnn.filters_{k}" for k in range(1, 6)),
    *(f"cnn.pool_{k}" for k in range(1, 6)),
    "cnn.dense_1", "cnn.dense_2",
}


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, name: str = "space.yaml") -> str:
    path = write(tmp_path, text, name)
    with pytest.raises(UserError) as info:
        spaces.load(str(path))
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


def params_yaml(body: str, family: str = "cnn") -> str:
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return f"family: {family}\ndescription: test space\nparams:\n{body}\n"


@pytest.fixture(scope="module")
def cnn() -> SearchSpace:
    return spaces.load("cnn")


# ------------------------------------------------------------------------ the built-in CNN space


def test_cnn_space_has_exactly_the_agreed_names(cnn):
    assert cnn.name == "cnn" and cnn.family == "cnn"
    assert cnn.description and "\n" not in cnn.description
    assert {p.name for p in cnn.params} == CNN_NAMES
    assert cnn.constants == {}
    assert cnn.path == spaces.BUILTIN_DIR / "cnn.yaml"
    assert cnn.path.is_file()
    by_name = {p.name: p for p in cnn.params}
    assert (by_name["cnn.depth"].kind, by_name["cnn.depth"].low, by_name["cnn.depth"].high) == ("int", 1, 5)
    assert by_name["cnn.filters_1"].when is None
    assert by_name["cnn.filters_1"].values == (16, 32, 48, 64, 96, 128)
    for k in range(2, 6):
        for stem in ("filters", "pool"):
            when = by_name[f"cnn.{stem}_{k}"].when
            assert (when.name, when.op, when.value) == ("cnn.depth", ">=", k)
    assert by_name["cnn.pool_3"].values == ("max", "avg", "none")
    assert by_name["cnn.batchnorm"].values == (True, False)
    assert by_name["lr"].kind == "loguniform" and (by_name["lr"].low, by_name["lr"].high) == (3e-4, 1e-2)
    assert by_name["weight_decay"].kind == "loguniform"
    assert (by_name["momentum"].low, by_name["momentum"].high) == (0.8, 0.99)
    assert str(by_name["momentum"].when) == "optimizer == sgd"
    assert by_name["lr_decay"].kind == "uniform" and (by_name["lr_decay"].low, by_name["lr_decay"].high) == (0.85, 1.0)
    assert by_name["decay_every"].values == (1, 2)
    assert by_name["augment"].values == ("none", "shift", "light", "strong")
    assert by_name["schedule"].values == ("step", "cosine", "onecycle") and by_name["flip"].values == (False, True)
    assert str(by_name["lr_decay"].when) == "schedule == step" and str(by_name["warmup"].when) == "schedule != step"
    assert by_name["optimizer"].values == ("adam", "adamw", "rmsprop", "sgd")
    # the model gathers filters_1.. in order: they must appear in file order
    order = [p.name for p in cnn.params]
    assert order.index("cnn.depth") < order.index("cnn.filters_1") < order.index("cnn.filters_5")


def test_fixed_trial_round_trip_depth_2_sgd(cnn):
    values = dict(DEPTH2, **{"cnn.filters_3": 128, "cnn.dense_2": 512})  # extra, inactive values
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an out-of-range value would warn
        trial = FixedTrial(values)
        constants = cnn.define_by_run(trial)
    assert constants == {}
    assert set(trial.params) == set(DEPTH2)  # only active parameters were suggested
    config = cnn.config_from_params(trial.params)
    assert config == DEPTH2
    assert {"cnn.filters_1", "cnn.filters_2", "cnn.pool_1", "cnn.pool_2", "momentum"} <= set(config)
    assert not {"cnn.filters_3", "cnn.pool_3", "cnn.dense_2"} & set(config)
    # ignoring the inactive extras
    assert cnn.config_from_params(values) == DEPTH2


def test_momentum_only_with_sgd(cnn):
    values = {k: v for k, v in DEPTH2.items() if k != "momentum"}
    values["optimizer"] = "adamw"
    trial = FixedTrial(values)
    cnn.define_by_run(trial)
    assert "momentum" not in trial.params
    config = cnn.config_from_params(values)
    assert "momentum" not in config and config["optimizer"] == "adamw"


def test_config_from_params_names_missing_active_param(cnn):
    values = {k: v for k, v in DEPTH2.items() if k != "cnn.filters_2"}
    with pytest.raises(UserError) as info:
        cnn.config_from_params(values)
    msg = str(info.value)
    assert "cnn.filters_2" in msg and "\n" not in msg and str(cnn.path) in msg


def _check_value(p: Param, v: object) -> None:
    if p.kind == "choice":
        assert any(v == c and type(v) is type(c) for c in p.values), (p.name, v)
    elif p.kind == "int":
        assert isinstance(v, int) and p.low <= v <= p.high, (p.name, v)
    else:
        assert isinstance(v, float) and p.low <= v <= p.high, (p.name, v)
        if p.step is not None:
            k = (v - p.low) / p.step
            assert math.isclose(k, round(k), abs_tol=1e-6), (p.name, v)


def _check_distribution(p: Param, d: optuna.distributions.BaseDistribution) -> None:
    """The Optuna distribution recorded for a suggestion matches the spec (log scale included)."""
    if p.kind == "choice":
        assert isinstance(d, optuna.distributions.CategoricalDistribution) and tuple(d.choices) == p.values
    elif p.kind == "int":
        assert isinstance(d, optuna.distributions.IntDistribution)
        assert (d.low, d.high, d.log, d.step) == (p.low, p.high, p.log, p.step or 1)
    else:
        assert isinstance(d, optuna.distributions.FloatDistribution)
        assert (d.low, d.high, d.log, d.step) == (p.low, p.high, p.kind == "loguniform", p.step)


def test_tpe_study_respects_ranges_and_conditions(cnn):
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    depths, optimizers = set(), set()

    def objective(trial):
        cnn.define_by_run(trial)
        return float(trial.params["cnn.depth"]) + trial.params["lr"]

    study.optimize(objective, n_trials=20)
    by_name = {p.name: p for p in cnn.params}
    for t in study.trials:
        params = t.params
        assert all("/" not in name for name in params)
        for name, v in params.items():
            _check_value(by_name[name], v)
            _check_distribution(by_name[name], t.distributions[name])
        depth = params["cnn.depth"]
        depths.add(depth)
        optimizers.add(params["optimizer"])
        for k in range(1, 6):
            assert (f"cnn.filters_{k}" in params) == (depth >= k)
            assert (f"cnn.pool_{k}" in params) == (depth >= k)
        for k in (1, 2):
            assert (f"cnn.dense_{k}" in params) == (params["cnn.dense_layers"] >= k)
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        # every parameter whose condition holds was suggested, and nothing else
        assert set(cnn.config_from_params(params)) == set(params)
    assert len(depths) > 1 and len(optimizers) > 1  # the conditions were actually exercised


def test_random_config_deterministic_per_seed(cnn):
    a, b, c = cnn.random_config(7), cnn.random_config(7), cnn.random_config(8)
    assert a == b
    assert a != c
    assert list(a) == list(b)
    by_name = {p.name: p for p in cnn.params}
    for name, v in a.items():
        _check_value(by_name[name], v)
    assert cnn.config_from_params(a) == a


def test_list_spaces_and_load_builtin(cnn):
    listed = spaces.list_spaces()
    assert "cnn" in listed and listed["cnn"] == cnn.description
    assert (spaces.BUILTIN_DIR / "cnn.yaml").is_file()
    lines = cnn.describe()
    assert lines[0].split() == ["cnn.depth", "int", "1..5"]
    assert any(line.split()[:1] == ["cnn.filters_3"] and line.endswith("when cnn.depth >= 3") for line in lines)
    assert any(line.startswith("momentum") and line.endswith("when optimizer == sgd") for line in lines)
    assert len(lines) == len(cnn.entries)


def test_unknown_builtin_name_lists_spaces():
    with pytest.raises(UserError) as info:
        spaces.load("nosuchspace")
    msg = str(info.value)
    assert "nosuchspace" in msg and "cnn" in msg and "path" in msg and "\n" not in msg


def test_missing_file():
    with pytest.raises(UserError) as info:
        spaces.load("/nonexistent/dir/space.yaml")
    msg = str(info.value)
    assert "/nonexistent/dir/space.yaml" in msg and "not found" in msg and "\n" not in msg


# ------------------------------------------------------------------------ a custom file


CUSTOM = """
family: mlp
description: A custom space.
params:
  mlp.depth:      {type: int, low: 1, high: 3}
  mlp.width_1:    {type: int, low: 16, high: 128, log: true}
  mlp.width_3:    {type: int, low: 16, high: 128, log: true, when: "mlp.depth >= 3"}
  mlp.pool:       {type: choice, values: [max, avg, none]}
  pooled_only:    {type: uniform, low: 0.0, high: 1.0, when: "mlp.pool in [max, avg]"}
  lr:             {type: loguniform, low: 1e-4, high: 1e-2}
  step_thing:     {type: uniform, low: 0.0, high: 1.0, step: 0.1}
  int_step:       {type: int, low: 0, high: 10, step: 2}
  image_channels: 1
  sizes:          [28, 28]
  big_only:       {value: 42, when: "mlp.depth == 3"}
  gray:           {type: choice, values: [true, false], when: "image_channels == 1"}
"""


def test_load_custom_file_with_constants_and_conditions(tmp_path):
    path = write(tmp_path, CUSTOM, "my_space.yaml")
    space = spaces.load(str(path))
    assert space.name == "my_space" and space.family == "mlp" and space.description == "A custom space."
    assert space.path == path.resolve()
    assert space.constants == {"image_channels": 1, "sizes": [28, 28], "big_only": 42}
    assert [p.name for p in space.params] == [
        "mlp.depth", "mlp.width_1", "mlp.width_3", "mlp.pool", "pooled_only", "lr", "step_thing", "int_step", "gray",
    ]
    lr = next(p for p in space.params if p.name == "lr")
    assert (lr.low, lr.high) == (1e-4, 1e-2)  # "1e-4" strings accepted
    assert spaces.load(path).name == "my_space"  # a Path works too

    values = {"mlp.depth": 1, "mlp.width_1": 32, "mlp.pool": "none", "lr": 1e-3, "step_thing": 0.3,
              "int_step": 4, "gray": True}
    trial = FixedTrial(values)
    constants = space.define_by_run(trial)
    assert constants == {"image_channels": 1, "sizes": [28, 28]}
    assert set(trial.params) == set(values)
    assert space.config_from_params(values) == {**values, "image_channels": 1, "sizes": [28, 28]}

    values3 = dict(values, **{"mlp.depth": 3, "mlp.width_3": 64, "mlp.pool": "avg", "pooled_only": 0.5})
    assert space.define_by_run(FixedTrial(values3)) == {"image_channels": 1, "sizes": [28, 28], "big_only": 42}
    config = space.config_from_params(values3)
    assert config["big_only"] == 42 and config["pooled_only"] == 0.5 and config["mlp.width_3"] == 64

    # constants returned are copies: mutating one config does not leak into the next
    space.random_config(0)["sizes"].append(1)
    assert space.random_config(0)["sizes"] == [28, 28]
    for seed in range(15):
        cfg = space.random_config(seed)
        assert round(cfg["step_thing"] * 10, 6) == round(cfg["step_thing"] * 10)
        assert cfg["int_step"] % 2 == 0
        assert ("pooled_only" in cfg) == (cfg["mlp.pool"] in ("max", "avg"))
        assert 1e-4 <= cfg["lr"] <= 1e-2

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: (space.define_by_run(t), 0.0)[1], n_trials=5)
    by_name = {p.name: p for p in space.params}
    for t in study.trials:
        for name, d in t.distributions.items():
            _check_distribution(by_name[name], d)

    lines = space.describe()
    expected = ["mlp.width_3", "int", "16..128", "(log)", "when", "mlp.depth", ">=", "3"]
    assert any(line.split() == expected for line in lines)
    assert any(line.split() == ["image_channels", "=", "1"] for line in lines)
    assert any(line.split()[:5] == ["step_thing", "uniform", "0.0..1.0", "step", "0.1"] for line in lines)


def test_numeric_strings_accepted(tmp_path):
    path = write(tmp_path, params_yaml("""
        lr:  {type: loguniform, low: 1e-4, high: "1e-2"}
        wd:  {type: uniform, low: 0, high: 1e-3, step: 1e-4}
        n:   {type: int, low: "2", high: 1e2}
    """))
    space = spaces.load(str(path))
    lr, wd, n = space.params
    assert (lr.low, lr.high) == (1e-4, 1e-2) and isinstance(lr.low, float)
    assert (wd.low, wd.high, wd.step) == (0.0, 1e-3, 1e-4)
    assert (n.low, n.high) == (2, 100) and isinstance(n.high, int)


def test_condition_semantics():
    c = Condition("x", ">=", 3)
    assert c.holds({"x": 3}) and not c.holds({"x": 2}) and not c.holds({})
    assert not Condition("x", "!=", "a").holds({})  # absent name: false, even for !=
    assert Condition("x", "!=", "a").holds({"x": "b"})
    assert Condition("x", "in", ("a", "b")).holds({"x": "b"})
    assert not Condition("x", "==", 1).holds({"x": True})  # booleans are not numbers here
    assert not Condition("x", "<", 3).holds({"x": "a"})


# ------------------------------------------------------------------------ validation errors


def test_error_yaml_syntax_reports_line(tmp_path):
    msg = load_error(tmp_path, "family: cnn\nparams:\n  a: {type: int, low: 1, high: 2\n  b: 3\n")
    assert "not valid YAML" in msg and "line " in msg


def test_error_top_level_not_mapping(tmp_path):
    msg = load_error(tmp_path, "- family\n- params\n")
    assert "mapping" in msg


def test_error_empty_file(tmp_path):
    assert "empty" in load_error(tmp_path, "")


def test_error_missing_family(tmp_path):
    assert "family" in load_error(tmp_path, "params:\n  a: {type: int, low: 1, high: 2}\n")


def test_error_missing_params(tmp_path):
    assert "params" in load_error(tmp_path, "family: cnn\n")


def test_error_empty_params(tmp_path):
    assert "params" in load_error(tmp_path, "family: cnn\nparams: {}\n")


def test_error_unknown_top_level_key(tmp_path):
    msg = load_error(tmp_path, "family: cnn\nparms: {}\nparams:\n  a: 1\n")
    assert "parms" in msg


def param_error(tmp_path: Path, body: str, line: int = 4, name: str = "a") -> str:
    """The error for a params: body, which must start by naming the file, the line the bad
    parameter is declared on (params_yaml puts the first on line 4) and the parameter."""
    msg = load_error(tmp_path, params_yaml(body))
    assert msg.startswith(f"{tmp_path / 'space.yaml'}:{line}: parameter '{name}'"), msg
    return msg


def test_error_unknown_type_lists_known(tmp_path):
    msg = param_error(tmp_path, "a: {type: normal, low: 0, high: 1}")
    assert "'normal'" in msg and "uniform, loguniform, int, choice" in msg


def test_error_missing_type(tmp_path):
    assert "type" in load_error(tmp_path, params_yaml("a: {low: 0, high: 1}"))


@pytest.mark.parametrize("spec,missing", [
    ("{type: uniform, high: 1.0}", "low"),
    ("{type: loguniform, low: 0.1}", "high"),
    ("{type: int, low: 1}", "high"),
])
def test_error_missing_low_high(tmp_path, spec, missing):
    assert f"needs '{missing}'" in param_error(tmp_path, f"a: {spec}")


@pytest.mark.parametrize("spec,low,high", [
    ("{type: uniform, low: 1.0, high: 0.5}", "1.0", "0.5"),
    ("{type: loguniform, low: 0.1, high: 0.01}", "0.1", "0.01"),
    ("{type: int, low: 5, high: 1}", "5", "1"),
])
def test_error_low_greater_than_high(tmp_path, spec, low, high):
    msg = param_error(tmp_path, f"a: {spec}")
    assert f"low ({low}) is greater than high ({high})" in msg and "swap" in msg


@pytest.mark.parametrize("kind", ["uniform", "loguniform"])
def test_error_float_low_equals_high_suggests_constant(tmp_path, kind):
    msg = param_error(tmp_path, f"a: {{type: {kind}, low: 0.5, high: 0.5}}")
    assert "constant" in msg and "'a: 0.5'" in msg  # the fix, written out


def test_int_low_equals_high_is_allowed(tmp_path):
    space = spaces.load(str(write(tmp_path, params_yaml("a: {type: int, low: 3, high: 3}"))))
    assert space.random_config(0) == {"a": 3}


@pytest.mark.parametrize("low", ["0.0", "-1.0"])
def test_error_loguniform_low_not_positive(tmp_path, low):
    msg = param_error(tmp_path, f"a: {{type: loguniform, low: {low}, high: 1.0}}")
    assert "low > 0" in msg and f"(got {low})" in msg and "type uniform" in msg


def test_error_non_numeric_bound(tmp_path):
    msg = param_error(tmp_path, "a: {type: uniform, low: small, high: 1.0}")
    assert "low must be a number" in msg and "'small'" in msg


def test_error_int_with_fractional_bound(tmp_path):
    assert "whole number" in load_error(tmp_path, params_yaml("a: {type: int, low: 1.5, high: 4}"))


@pytest.mark.parametrize("body,needles", [
    ("a: {type: int, low: 0, high: 9, step: 2}", ["(9)", "step (2)", "high: 8"]),
    ("a: {type: uniform, low: 0.0, high: 1.0, step: 0.3}", ["(1.0)", "step (0.3)"]),
    ("a: {type: uniform, low: 0.0, high: 1.0, step: -0.1}", ["step must be > 0", "(got -0.1)"]),
    ("a: {type: int, low: 1, high: 64, log: true, step: 2}", ["'log: true'", "step"]),
    ("a: {type: int, low: 0, high: 64, log: true}", ["low >= 1", "(got 0)"]),
    ("a: {type: int, low: 1, high: 64, log: maybe}", ["'log'", "maybe"]),
])
def test_error_bad_step_or_log(tmp_path, body, needles):
    msg = param_error(tmp_path, body)
    assert all(needle in msg for needle in needles), (needles, msg)


def test_error_empty_values(tmp_path):
    assert "'values' is empty" in param_error(tmp_path, "a: {type: choice, values: []}")


@pytest.mark.parametrize("body,needle", [
    ("a: {type: choice}", "needs 'values'"),
    ("a: {type: choice, values: 3}", "not 3"),
    ("a: {type: choice, values: [[1, 2], 3]}", "not [1, 2]"),
    ("a: {type: choice, values: [1, 1]}", "value 1 is listed twice"),
])
def test_error_bad_values(tmp_path, body, needle):
    assert needle in param_error(tmp_path, body)


def test_error_unknown_key(tmp_path):
    msg = param_error(tmp_path, "a: {type: uniform, low: 0.0, high: 1.0, lg: true}")
    assert "unknown key 'lg'" in msg and "type, low, high, step, when" in msg  # the keys it could have meant


def test_error_log_key_on_uniform_is_unknown(tmp_path):
    assert "log" in load_error(tmp_path, params_yaml("a: {type: uniform, low: 0.1, high: 1.0, log: true}"))


def test_error_when_does_not_parse(tmp_path):
    msg = param_error(tmp_path, """
        a: {type: int, low: 1, high: 3}
        b: {type: int, low: 1, high: 3, when: "a is big"}
    """, line=5, name="b")
    assert "'a is big'" in msg and "NAME OP VALUE" in msg


def test_error_when_unknown_parameter(tmp_path):
    msg = param_error(tmp_path, """
        a: {type: int, low: 1, high: 3}
        b: {type: int, low: 1, high: 3, when: "zz >= 2"}
    """, line=5, name="b")
    assert "unknown parameter 'zz'" in msg


def test_error_when_declared_later(tmp_path):
    msg = param_error(tmp_path, """
        b: {type: int, low: 1, high: 3, when: "a >= 2"}
        a: {type: int, low: 1, high: 3}
    """, line=4, name="b")
    assert "'a >= 2'" in msg and "later" in msg and "move 'a' above 'b'" in msg


@pytest.mark.parametrize("cond,needle", [
    ("opt == sgdd", "sgdd is not one of the values of 'opt' ([sgd, adam])"),
    ("opt >= 2", "'opt' is not numeric"),
    ("opt in sgd", "'in' needs a non-empty list"),
    ("opt == [sgd, adam]", "== needs a single value"),
    ("opt in [sgd, adam", "'opt in [sgd, adam'"),
    ("b > 1", "the parameter itself"),
])
def test_error_bad_condition_values(tmp_path, cond, needle):
    msg = param_error(tmp_path, f"""
        opt: {{type: choice, values: [sgd, adam]}}
        b: {{type: int, low: 1, high: 3, when: "{cond}"}}
    """, line=5, name="b")
    assert needle in msg


@pytest.mark.parametrize("name", ["model/depth", "bad name", "a-b"])
def test_error_bad_parameter_name(tmp_path, name):
    msg = load_error(tmp_path, params_yaml(f'"{name}": {{type: int, low: 1, high: 3}}'))
    assert name in msg


def test_error_slash_name_suggests_dot(tmp_path):
    assert "model.depth" in load_error(tmp_path, params_yaml("model/depth: {type: int, low: 1, high: 3}"))


def test_error_duplicate_parameter(tmp_path):
    msg = load_error(tmp_path, params_yaml("""
        a: {type: int, low: 1, high: 3}
        a: {type: int, low: 1, high: 5}
    """))
    assert "duplicate" in msg and "line 5" in msg


def test_error_messages_carry_line_numbers(tmp_path):
    msg = load_error(tmp_path, params_yaml("""
        a: {type: int, low: 1, high: 3}
        b: {type: int, low: 4, high: 3}
    """))
    path = tmp_path / "space.yaml"
    assert msg.startswith(f"{path}:5: parameter 'b'")


def test_error_constant_mapping_without_value(tmp_path):
    assert "needs 'value'" in param_error(tmp_path, "a: {type: constant}")


def test_readme_examples_load(tmp_path):
    """The YAML examples in search_spaces/README.md are valid (docs cannot drift from the loader)."""
    readme = (Path(__file__).resolve().parent.parent / "search_spaces" / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    # the spaces across families are whole files: both give the same two families
    across = [b for b in blocks if b.startswith("description: cnn against lstm")]
    assert len(across) == 2
    for k, block in enumerate(across):
        space = spaces.load(str(write(tmp_path, block, f"across{k}.yaml")))
        assert space.families == ("cnn", "lstm")
        assert {c["family"] for c in (space.random_config(seed) for seed in range(12))} == {"cnn", "lstm"}
    blocks = [b for b in blocks if b not in across]
    assert len(blocks) == 5
    space = spaces.load(str(write(tmp_path, blocks[0], "format.yaml")))
    assert space.constants == {"image_channels": 1} and len(space.params) == 9
    assert space.starting_points == ()

    # the start: example is a whole file; the error the README shows is the one it gives
    start_blocks = [b for b in blocks if "\nstart:\n" in b]
    assert len(start_blocks) == 1
    space = spaces.load(str(write(tmp_path, start_blocks[0], "start.yaml")))
    assert space.starting_points == (
        {"cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "optimizer": "adam", "lr": 1e-3},
        {"cnn.depth": 1, "cnn.filters_1": 64, "momentum": 0.9},
    )
    shown = next(line for line in readme.splitlines() if line.startswith("my_space.yaml:") and "start point" in line)
    path = write(tmp_path, start_blocks[0] + "  - {cnn.depth: 1, cnn.filters_2: 64}\n", "my_space.yaml")
    with pytest.raises(UserError) as info:
        spaces.load(str(path))
    assert str(info.value) == shown.replace("my_space.yaml", str(path), 1)

    # the other blocks are fragments of a params: mapping; declare optimizer first where they use it
    configs = []
    for k, block in enumerate(b for b in blocks[1:] if b not in start_blocks):
        body = textwrap.dedent(block).strip("\n")
        if "optimizer:" not in body:
            body = "optimizer: {type: choice, values: [adam, sgd]}\n" + body
        text = "family: x\nparams:\n" + textwrap.indent(body, "  ") + "\n"
        space = spaces.load(str(write(tmp_path, text, f"fragment{k}.yaml")))
        configs += [space.random_config(seed) for seed in range(12)]
    assert any(c.get("input_size") == [28, 28] for c in configs)
    assert any(c.get("extra") == {"a": 1, "b": 2} for c in configs)
    for cfg in configs:
        if "warmup_epochs" in cfg or "extra" in cfg:
            assert ("warmup_epochs" in cfg) == (cfg["optimizer"] == "sgd")
        if "cnn.pool_1" in cfg:
            assert ("pool_size" in cfg) == (cfg["cnn.pool_1"] in ("max", "avg"))
            assert ("nesterov" in cfg) == (cfg.get("momentum", 0) > 0.9)


# ------------------------------------------------------------------------ starting points (start:)


KERAS_SIMPLE_CONVNET = {
    "cnn.depth": 2, "cnn.filters_1": 32, "cnn.filters_2": 64, "cnn.kernel": 3, "cnn.convs": 1, "cnn.padding": "valid",
    "cnn.pool_1": "max", "cnn.pool_2": "max", "cnn.batchnorm": False, "cnn.conv_dropout": 0.0,
    "cnn.head": "flatten", "cnn.dense_layers": 0, "cnn.dropout": 0.5, "optimizer": "adam", "lr": 0.001,
    "weight_decay": 1e-6, "batch_size": 128, "lr_decay": 1.0, "decay_every": 1, "schedule": "step",
    "label_smoothing": 0.0, "augment": "none", "erasing": 0.0, "flip": False, "balance": "none",
}
MODERN_BASELINE = {
    "cnn.depth": 3, "cnn.filters_1": 32, "cnn.filters_2": 64, "cnn.filters_3": 128, "cnn.kernel": 3, "cnn.convs": 1,
    "cnn.padding": "same", "cnn.pool_1": "max", "cnn.pool_2": "max", "cnn.pool_3": "max", "cnn.batchnorm": True,
    "cnn.conv_dropout": 0.1, "cnn.head": "flatten", "cnn.dense_layers": 1, "cnn.dense_1": 128, "cnn.dropout": 0.3,
    "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4, "batch_size": 128, "lr_decay": 0.9,
    "decay_every": 1, "schedule": "step", "label_smoothing": 0.05, "augment": "light", "erasing": 0.0, "flip": False,
    "balance": "none",
}


def _same_typed(a: dict, b: dict) -> bool:
    """Equal dicts whose values also have the same types (True is not 1, 1.0 is not 1)."""
    return a == b and list(a) == list(b) and all(type(a[k]) is type(b[k]) for k in a)


def test_builtin_dir_is_the_checkout_folder():
    assert spaces.BUILTIN_DIR == Path(__file__).resolve().parent.parent / "search_spaces"


def test_cnn_starting_points(cnn):
    assert len(cnn.starting_points) == 4
    recipe, keras, modern, three_conv = cnn.starting_points
    assert _same_typed(keras, KERAS_SIMPLE_CONVNET)
    assert _same_typed(modern, MODERN_BASELINE)
    # the reports' 3-conv/dense-64 net (256,837 parameters with 5 classes: tests/test_models.py)
    assert {k: three_conv[k] for k in ("cnn.depth", "cnn.filters_3", "cnn.pool_3", "cnn.dense_1", "batch_size")} == \
        {"cnn.depth": 3, "cnn.filters_3": 64, "cnn.pool_3": "none", "cnn.dense_1": 64, "batch_size": 32}
    # the fixed recipe of issue 15: two convs a block, one-cycle, shifts
    assert {k: recipe[k] for k in ("cnn.convs", "schedule", "augment", "label_smoothing")} == \
        {"cnn.convs": 2, "schedule": "onecycle", "augment": "shift", "label_smoothing": 0.1}
    by_name = {p.name: p for p in cnn.params}
    assert (by_name["cnn.conv_dropout"].low, by_name["cnn.conv_dropout"].high) == (0.0, 0.25)
    assert (by_name["label_smoothing"].low, by_name["label_smoothing"].high) == (0.0, 0.15)
    for point in cnn.starting_points:
        for name, v in point.items():
            _check_value(by_name[name], v)
        # all are full configs (the recipe's flip aside, set by the data): exactly the active parameters
        full = point if "flip" in point else {**point, "flip": False}
        assert cnn.config_from_params(full) == full
    assert cnn.points_to_evaluate() == list(cnn.starting_points)
    cnn.points_to_evaluate()[0]["lr"] = 1.0  # copies: the space is not changed
    assert cnn.starting_points[0]["lr"] == 0.003
    hash(cnn)  # still hashable


def _enqueued_trials(space: SearchSpace, points: list[dict], sampler) -> list[optuna.trial.FrozenTrial]:
    """What Ray's OptunaSearch does with points_to_evaluate: enqueue, then ask + define_by_run."""
    study = optuna.create_study(direction="maximize", sampler=sampler)  # in memory
    for point in points:
        study.enqueue_trial(point)
    for n in range(len(points) + 3):  # the enqueued points, then a few sampled trials
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Optuna warns (and goes on) when a fixed value is out of range
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = study.ask()
            space.define_by_run(trial)
        study.tell(trial, float(n % 3))
    return study.trials


@pytest.mark.parametrize("sampler", ["tpe", "tpe-multivariate-group"])
def test_enqueued_starting_points_are_suggested_exactly(cnn, sampler):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sampler == "tpe":
            made = optuna.samplers.TPESampler(seed=0)
        else:  # what digitsearch.search uses: TPE (4 startup trials) with local steps
            from digitsearch.search.algorithms import sampler as search_sampler
            from digitsearch.search.request import SearchRequest

            made = search_sampler(SearchRequest(trials=12))
    partial = {"cnn.depth": 4, "cnn.filters_4": 96, "optimizer": "sgd", "momentum": 0.95, "lr": 0.005}
    points = [*cnn.points_to_evaluate(), partial]
    trials = _enqueued_trials(cnn, points, made)
    by_name = {p.name: p for p in cnn.params}
    for point, t in zip(points, trials):
        assert {k: t.params[k] for k in point} == point
        assert all(type(t.params[k]) is type(v) for k, v in point.items())
        assert set(cnn.config_from_params(t.params)) == set(t.params)  # the sampler filled the rest
        for name, v in t.params.items():
            _check_value(by_name[name], v)
    assert set(trials[1].params) == set(KERAS_SIMPLE_CONVNET)
    assert set(trials[2].params) == set(MODERN_BASELINE)
    assert {"cnn.filters_1", "cnn.filters_3", "cnn.pool_4", "weight_decay"} <= set(trials[len(points) - 1].params)


START_SPACE = """
family: mlp
params:
  depth:     {type: int, low: 1, high: 4}
  width_3:   {type: choice, values: [32, 64], when: "depth >= 3"}
  kernel:    {type: choice, values: [3, 5]}
  bn:        {type: choice, values: [true, false]}
  lr:        {type: loguniform, low: 1.0e-4, high: 1.0e-2}
  drop:      {type: uniform, low: 0.0, high: 0.5, step: 0.1}
  smooth:    {type: uniform, low: 0.0, high: 0.2}
  width:     {type: int, low: 16, high: 64, step: 16}
  units:     {type: int, low: 8, high: 512, log: true}
  optimizer: {type: choice, values: [adam, sgd]}
  momentum:  {type: uniform, low: 0.8, high: 0.99, when: "optimizer == sgd"}
  nesterov:  {type: choice, values: [true, false], when: "momentum > 0.9"}
  channels:  1
  gray:      {type: choice, values: [true, false], when: "channels == 1"}
"""


def test_start_points_load_in_order_with_clean_values(tmp_path):
    path = write(tmp_path, START_SPACE + textwrap.dedent("""
        start:
          - {depth: 3, width_3: 64, lr: 1e-3, drop: 0.3, smooth: 0, kernel: 5.0, units: 100, gray: true}
          - {momentum: 0.95, nesterov: true}   # optimizer left to the sampler: momentum may apply
          - optimizer: sgd
            momentum: 0.9
            width: 48
    """))
    space = spaces.load(str(path))
    first, second, third = space.starting_points
    # key order as written; numbers as Optuna samples them: floats for float params, the choice's own value
    assert _same_typed(first, {"depth": 3, "width_3": 64, "lr": 0.001, "drop": 0.3, "smooth": 0.0, "kernel": 5,
                               "units": 100, "gray": True})
    assert _same_typed(second, {"momentum": 0.95, "nesterov": True})
    assert _same_typed(third, {"optimizer": "sgd", "momentum": 0.9, "width": 48})
    trials = _enqueued_trials(space, space.points_to_evaluate(), optuna.samplers.TPESampler(seed=1))
    for point, t in zip(space.starting_points, trials):
        active = {k: v for k, v in point.items() if k in t.params}
        if point is not second:
            assert active == point
        assert all(t.params[k] == v and type(t.params[k]) is type(v) for k, v in active.items())
    assert trials[1].params.get("momentum", 0.95) == 0.95  # used when the sampler picked sgd


@pytest.mark.parametrize("start", [None, "[]", "null"])
def test_no_start_means_no_points(tmp_path, start):
    text = START_SPACE + (f"start: {start}\n" if start else "")
    space = spaces.load(str(write(tmp_path, text)))
    assert space.starting_points == () and space.points_to_evaluate() == []


@pytest.mark.parametrize("point,needles", [
    # unknown or constant names
    ("{depht: 2}", ["'depht'", "unknown", "did you mean 'depth'"]),
    ("{channels: 1}", ["'channels'", "constant"]),
    # values outside the range, off the step grid, of the wrong type
    ("{depth: 5}", ["'depth'", "outside", "1..4"]),
    ("{depth: 2.0}", ["'depth'", "whole number", "write 2"]),
    ("{depth: '2'}", ["'depth'", "whole number"]),
    ("{depth: true}", ["'depth'", "whole number"]),
    ("{width: 40}", ["'width'", "step grid", "32 or 48"]),
    ("{units: 4}", ["'units'", "outside"]),
    ("{drop: 0.25}", ["'drop'", "step grid", "0.2 or 0.3"]),
    ("{drop: 0.6}", ["'drop'", "outside"]),
    ("{lr: 1.0e-5}", ["'lr'", "outside"]),
    ("{lr: 0.05}", ["'lr'", "outside"]),
    ("{lr: small}", ["'lr'", "number", "small"]),
    ("{lr: .inf}", ["'lr'", "finite"]),
    ("{smooth: false}", ["'smooth'", "number"]),
    ("{kernel: 4}", ["'kernel'", "not one of", "[3, 5]"]),
    ("{bn: 1}", ["'bn'", "not one of"]),
    ("{optimizer: Adam}", ["'optimizer'", "not one of"]),
    ("{kernel: [3, 5]}", ["'kernel'", "single value"]),
    # parameters their condition switches off, given the point's other values
    ("{depth: 2, width_3: 32}", ["'width_3'", "inactive", "depth >= 3", "depth = 2"]),
    ("{optimizer: adam, momentum: 0.9}", ["'momentum'", "inactive", "optimizer == sgd"]),
    ("{optimizer: adam, nesterov: true}", ["'nesterov'", "inactive", "'momentum' is itself inactive"]),
    ("{momentum: 0.85, nesterov: true}", ["'nesterov'", "inactive", "momentum = 0.85"]),
    # points that are not non-empty mappings
    ("3", ["mapping"]),
    ("[depth, 2]", ["mapping"]),
    ("{}", ["empty"]),
])
def test_error_bad_start_point(tmp_path, point, needles):
    # the bad point comes second, after a good one: the message names point 2
    msg = load_error(tmp_path, START_SPACE + f"start:\n  - {{depth: 1}}\n  - {point}\n")
    assert "start point 2" in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("start", ["{depth: 2}", "depth", "3"])
def test_error_start_not_a_list(tmp_path, start):
    msg = load_error(tmp_path, START_SPACE + f"start: {start}\n")
    assert "'start'" in msg and "list" in msg


def test_start_error_names_file_line_point_and_parameter(tmp_path):
    path = write(tmp_path, params_yaml("""
        a: {type: int, low: 1, high: 3}
        b: {type: int, low: 1, high: 3, when: "a >= 2"}
    """) + "start:\n  - {a: 2, b: 3}\n  - a: 1\n    b: 2\n")
    with pytest.raises(UserError) as info:
        spaces.load(str(path))
    assert str(info.value).startswith(f"{path}:9: start point 2: parameter 'b': inactive in this point")


def test_hand_built_space_has_no_starting_points():
    space = SearchSpace(name="x", family="cnn", description="", path=Path("x.yaml"),
                        params=(Param(name="a", kind="int", low=1, high=3),))
    assert space.starting_points == () and space.points_to_evaluate() == []
    given = SearchSpace(name="x", family="cnn", description="", path=Path("x.yaml"),
                        params=(Param(name="a", kind="int", low=1, high=3),), starting_points=[{"a": 2}])
    assert given.starting_points == ({"a": 2},)
