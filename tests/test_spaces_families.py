"""Spaces across families (`include:`), per-space budgets (`limits:`) and `--set` overrides."""
import pytest

from digitsearch import spaces
from digitsearch.core.config import TrialConfig
from digitsearch.errors import UserError
from digitsearch.search.request import SearchRequest, parse_overrides, resolve_limits


def write(tmp_path, text: str, name: str = "space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_all_space_includes_each_family_branch():
    space = spaces.load("all")
    assert space.family == spaces.MIXED
    assert set(space.families) == {"cnn", "lenet", "vgg", "resnet", "lstm", "transfer"}
    by_name = {p.name: p for p in space.entries}
    assert str(by_name["lenet.activation"].when) == "family == lenet"
    assert str(by_name["cnn.filters_3"].when) == "cnn.depth >= 3"  # chains through cnn.depth
    # every family's hand-made nets come first, tagged with their family
    assert {p["family"] for p in space.starting_points} == set(space.families)


@pytest.mark.parametrize("seed", range(12))
def test_all_space_configs_only_hold_their_family(seed):
    space = spaces.load("all")
    config = space.random_config(seed)
    family = config["family"]
    prefixed = {k.split(".")[0] for k in config if "." in k}
    assert prefixed == {family}
    cfg = TrialConfig.from_flat(config, space.family)
    assert cfg.family == family and cfg.model_args


def test_include_rules(tmp_path):
    path = write(tmp_path, "include: [cnn, lenet]\nparams:\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n")
    space = spaces.load(path)
    assert space.families == ("cnn", "lenet")
    assert all(set(p) <= {e.name for e in space.params} for p in space.starting_points)
    with pytest.raises(UserError, match="already declared by an included space"):
        spaces.load(write(tmp_path, "include: [cnn]\nparams:\n  cnn.depth: 2\n", "dup.yaml"))
    with pytest.raises(UserError, match="both a top-level key and a parameter"):
        spaces.load(write(tmp_path, "family: cnn\nparams:\n  family: {type: choice, values: [cnn]}\n", "both.yaml"))
    with pytest.raises(UserError, match="'include' must be a non-empty list"):
        spaces.load(write(tmp_path, "include: cnn\nparams:\n  lr: 0.1\n", "bad.yaml"))
    with pytest.raises(UserError, match="unknown search space 'nope'"):
        spaces.load(write(tmp_path, "include: [nope]\nparams:\n  lr: 0.1\n", "nope.yaml"))


def test_a_family_parameter_makes_a_mixed_space(tmp_path):
    path = write(tmp_path, "params:\n  family: {type: choice, values: [cnn, lstm]}\n"
                           "  lstm.hidden: {type: choice, values: [32, 64], when: 'family == lstm'}\n")
    assert spaces.load(path).families == ("cnn", "lstm")
    with pytest.raises(UserError, match="every trial needs a family"):
        spaces.load(write(tmp_path, "params:\n  x: 1\n  family: {value: cnn, when: 'x == 1'}\n", "gated.yaml"))


def test_limits_set_the_budget_unless_the_command_line_does(tmp_path):
    transfer = spaces.load("transfer")
    assert transfer.limits == {"max_mflops": 3000, "max_params": 20000000}
    request = SearchRequest(space="transfer")
    request = resolve_limits(request, transfer)
    assert (request.max_params, request.max_mflops) == (20_000_000, 3000.0)
    request = SearchRequest(space="transfer", max_mflops=100)
    request = resolve_limits(request, transfer)
    assert request.max_mflops == 100.0
    request = SearchRequest()
    request = resolve_limits(request, spaces.load("lenet"))
    assert (request.max_params, request.max_mflops) == (3_000_000, 40.0)
    request = SearchRequest()
    request = resolve_limits(request, spaces.load("cnn"))  # raised for its two-convs-a-block recipe net
    assert (request.max_params, request.max_mflops) == (3_000_000, 120.0)
    with pytest.raises(UserError, match="unknown limit 'max_gpus'"):
        spaces.load(write(tmp_path, "family: cnn\nlimits: {max_gpus: 1}\nparams:\n  lr: 0.1\n"))
    with pytest.raises(UserError, match="above 0"):
        spaces.load(write(tmp_path, "family: cnn\nlimits: {max_mflops: 0}\nparams:\n  lr: 0.1\n", "zero.yaml"))


def test_in_a_space_across_families_each_family_keeps_its_own_limits_unless_overridden(tmp_path):
    every = spaces.load("all")
    assert every.family_limits == {"cnn": {"max_mflops": 120}, "transfer": {"max_mflops": 3000, "max_params": 20000000}}
    request = SearchRequest(space="all")
    request = resolve_limits(request, every)
    # the cnn recipe net (59 MFLOPs) trains under --space all as under --space cnn; families
    # whose spaces set no limits keep the defaults
    assert (request.max_params, request.max_mflops) == (3_000_000, 40.0)
    assert request.family_limits == {"cnn": {"max_params": 3_000_000, "max_mflops": 120.0},
                                     "transfer": {"max_params": 20_000_000, "max_mflops": 3000.0}}
    request = SearchRequest(space="all", max_mflops=50)  # the command line holds every family
    request = resolve_limits(request, every)
    assert {own["max_mflops"] for own in request.family_limits.values()} == {50.0}
    assert request.family_limits["transfer"]["max_params"] == 20_000_000
    capped = spaces.load(write(tmp_path, "include: [cnn, lenet]\nlimits: {max_mflops: 10}\n"
                                         "params:\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"))
    request = SearchRequest()
    request = resolve_limits(request, capped)  # the including file's own limits hold its families too
    assert request.family_limits == {"cnn": {"max_params": 3_000_000, "max_mflops": 10.0}}
    assert capped.fingerprint() != spaces.load(write(tmp_path, "include: [lenet]\nlimits: {max_mflops: 10}\n"
                                                               "params:\n  lr: 0.01\n", "one.yaml")).fingerprint()


def test_set_fixes_parameters_as_constants():
    space = spaces.load("cnn").fixed(parse_overrides(["cnn.depth=2", "optimizer=sgd", "lr=1e-3"]))
    assert space.constants["cnn.depth"] == 2 and space.constants["lr"] == 0.001
    names = {p.name for p in space.params}
    assert not {"cnn.depth", "optimizer", "lr"} & names
    config = space.random_config(0)
    assert config["cnn.depth"] == 2 and "cnn.filters_3" not in config and "momentum" in config
    assert all("cnn.depth" not in p for p in space.starting_points)
    # a fixed parameter keeps its condition: momentum exists only with sgd
    fixed = spaces.load("cnn").fixed({"momentum": 0.95, "optimizer": "adam"})
    assert "momentum" not in fixed.random_config(1)


def test_set_errors():
    with pytest.raises(UserError, match="no parameter 'cnn.colour'"):
        spaces.load("cnn").fixed({"cnn.colour": "red"})
    with pytest.raises(UserError, match="NAME=VALUE"):
        parse_overrides(["depth"])
    assert parse_overrides(["transfer.init=checkpoint:/a/b.pt", "x=a: b"]) == {
        "transfer.init": "checkpoint:/a/b.pt", "x": "a: b"}
