"""The transfer family: torchvision backbones, init from ImageNet/scratch/checkpoint, freezing, offline errors."""
from __future__ import annotations

import socket
import time

import pytest
import torch
import torchvision
from param_counts_transfer import FORMULAS

from digitsearch import models
from digitsearch.errors import UserError
from digitsearch.final.export import save_model
from digitsearch.models import transfer as tr

BACKBONES = list(tr.BACKBONES)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache: TORCH_HOME points into tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would win over TORCH_HOME
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def offline(monkeypatch):
    """No name resolves, as on a machine without internet, whatever this one has."""
    def refuse(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_vgg16_features_have_14714688_parameters_and_frozen_only_the_head_trains():
    assert sum(p.numel() for p in torchvision.models.vgg16().features.parameters()) == 14_714_688
    model = models.create("transfer", backbone="vgg16", freeze="backbone", head_width=256)
    assert sum(p.numel() for p in model.backbone.parameters()) == 14_714_688
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert models.count_params(model) == (512 * 256 + 256) + (256 * 10 + 10)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("image_size", [28, [28, 84]])
def test_each_backbone_builds_runs_and_backpropagates(backbone, image_size):
    torch.manual_seed(0)
    model = models.create("transfer", backbone=backbone, image_size=image_size, input_size=32, num_classes=7)
    height, width = models.image_hw(image_size)
    x = torch.randn(4 if backbone != "vgg16" else 2, 1, height, width)
    logits = model(x)
    assert logits.shape == (len(x), 7)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(x)) % 7)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("freeze", ["backbone", "last-stage", "none"])
@pytest.mark.parametrize("head_width", [0, 128])
def test_trainable_parameters_match_the_hand_count(backbone, freeze, head_width):
    kwargs = dict(backbone=backbone, freeze=freeze, head_width=head_width, num_classes=5)
    assert models.count_params(models.create("transfer", **kwargs)) == FORMULAS["transfer"](kwargs)


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_small"])
def test_freeze_modes_and_frozen_batchnorm_stays_in_eval(backbone):
    spec = tr.BACKBONES[backbone]
    for freeze in ("backbone", "last-stage", "none"):
        model = models.create("transfer", backbone=backbone, freeze=freeze).train()
        last = {id(p) for p in spec.last_stage(model.backbone).parameters()}
        for p in model.backbone.parameters():
            expected = freeze == "none" or (freeze == "last-stage" and id(p) in last)
            assert p.requires_grad == expected, freeze
        assert all(p.requires_grad for p in model.head.parameters())
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.training == any(p.requires_grad for p in m.parameters()), freeze
        assert model.training and model.head.training
        model.eval()
        assert not any(m.training for m in model.modules())


def test_frozen_backbone_does_not_change_while_training():
    torch.manual_seed(0)
    model = models.create("transfer", backbone="resnet18", freeze="backbone")
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.arange(4))
    loss.backward()
    optimizer.step()
    # weights and BatchNorm running statistics alike
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_forward_undoes_the_dataset_normalisation():
    torch.manual_seed(0)
    plain = models.create("transfer", backbone="mobilenet_v3_small").eval()
    standardised = models.create("transfer", backbone="mobilenet_v3_small", input_mean=0.13, input_std=0.31).eval()
    standardised.load_state_dict({**plain.state_dict(), "input_mean": standardised.input_mean,
                                  "input_std": standardised.input_std})
    pixels = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(standardised((pixels - 0.13) / 0.31), plain(pixels), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prefix", ["", "backbone."])
def test_checkpoint_init_loads_the_backbone_from_a_state_dict(tmp_path, prefix):
    torch.manual_seed(0)
    source = models.create("transfer", backbone="resnet18", num_classes=3)
    path = tmp_path / "pretrained.pt"
    if prefix:  # a whole digitsearch transfer model, head and all
        torch.save(source.state_dict(), path)
    else:  # a plain torchvision model
        tv = torchvision.models.resnet18()
        tv.load_state_dict({**tv.state_dict(), **source.backbone.state_dict()})
        torch.save(tv.state_dict(), path)
    model = models.create("transfer", backbone="resnet18", init=f"checkpoint:{path}", num_classes=10)
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert model.head[-1].out_features == 10  # the head is new: another class count


def test_checkpoint_init_reads_a_digitsearch_model_file(tmp_path):
    torch.manual_seed(0)
    source = models.create("transfer", backbone="mobilenet_v3_small", num_classes=5)
    path = tmp_path / "model.pt"
    save_model(path, source, family="transfer", model_args={"backbone": "mobilenet_v3_small", "num_classes": 5},
               mean=0.1, std=0.3, class_names=list("abcde"), image_size=28)
    model = models.create("transfer", backbone="mobilenet_v3_small", init=f"checkpoint:{path}")
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_a_checkpoint_of_another_backbone_is_a_user_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(models.create("transfer", backbone="mobilenet_v3_small").state_dict(), path)
    with pytest.raises(UserError) as err:
        models.create("transfer", backbone="vgg16", init=f"checkpoint:{path}")
    assert str(path) in one_line(err) and "vgg16" in str(err.value)
    path.write_bytes(b"not a torch file")
    with pytest.raises(UserError) as err:
        models.create("transfer", backbone="vgg16", init=f"checkpoint:{path}")
    assert str(path) in one_line(err)


def test_bad_values_are_one_line_user_errors(tmp_path):
    missing = tmp_path / "nope.pt"
    cases = [
        (dict(init=f"checkpoint:{missing}"), [str(missing)]),
        (dict(init="pretrained"), ["'pretrained'", "imagenet", "scratch", "checkpoint:PATH"]),
        (dict(backbone="resnet50"), ["'resnet50'", "resnet18", "vgg16", "mobilenet_v3_small"]),
        (dict(freeze="all"), ["'all'", "backbone", "last-stage", "none"]),
    ]
    for kwargs, needles in cases:
        with pytest.raises(UserError) as err:
            models.create("transfer", **kwargs)
        message = one_line(err)
        assert all(needle in message for needle in needles), message
    with pytest.raises(UserError, match="nope.pt"):
        tr.check_init(f"checkpoint:{missing}")
    tr.check_init("imagenet")
    tr.check_init("scratch")


def test_too_small_input_is_an_invalid_architecture():
    with pytest.raises(models.InvalidArchitecture):
        models.create("transfer", backbone="vgg16", input_size=16)


def _offline_attempts(torch_home) -> None:
    """Both ways to ask for ImageNet weights offline with an empty cache: each one line naming the
    file, the folder and the address, and no half-written file left behind."""
    expected = torch_home / "resnet18-f37072fd.pth"
    assert tr.imagenet_weights_file("resnet18") == expected
    for attempt in (lambda: tr.ensure_imagenet_weights("resnet18", progress=False),
                    lambda: models.create("transfer", backbone="resnet18", init="imagenet")):
        with pytest.raises(UserError) as err:
            attempt()
        message = one_line(err)
        assert "resnet18-f37072fd.pth" in message and str(torch_home) in message and "TORCH_HOME" in message
        assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert not expected.exists() and list(torch_home.iterdir()) == []


def test_imagenet_offline_with_an_empty_cache_is_one_line_naming_file_and_folder(torch_home, offline):
    _offline_attempts(torch_home)


@pytest.mark.timing
def test_imagenet_offline_fails_at_once(torch_home, offline, band):
    started = time.monotonic()
    _offline_attempts(torch_home)
    band("both offline ImageNet requests, to their one-line errors", time.monotonic() - started, 10.0)


def _silent_server_attempt(torch_home, monkeypatch, server) -> str:
    """A download from a server that accepts the connection and never replies, with a 0.5-s
    socket timeout: the UserError's line."""
    url = f"http://127.0.0.1:{server.getsockname()[1]}/resnet18-f37072fd.pth"
    monkeypatch.setattr(tr, "_weights_url", lambda backbone: url)
    with pytest.raises(UserError) as err:
        tr.ensure_imagenet_weights("resnet18", progress=False, timeout=0.5)
    line = one_line(err)
    assert url in line
    assert socket.getdefaulttimeout() is None  # the process-wide default is restored
    return line


@pytest.fixture
def silent_server():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # accepts the connection, never replies
        yield server


def test_a_server_that_never_answers_times_out(torch_home, monkeypatch, silent_server):
    """Never a hang: a firewall that swallows packets ends in the socket timeout, as a UserError
    (a hang would meet the suite's per-test cap instead)."""
    _silent_server_attempt(torch_home, monkeypatch, silent_server)


@pytest.mark.timing
def test_a_server_that_never_answers_times_out_at_once(torch_home, monkeypatch, silent_server, band):
    started = time.monotonic()
    _silent_server_attempt(torch_home, monkeypatch, silent_server)
    band("a server that never answers, with a 0.5-s timeout, to its one-line error", time.monotonic() - started, 5.0)


def test_imagenet_weights_in_the_cache_are_used(torch_home, offline):
    torch.manual_seed(1)
    weights = torchvision.models.mobilenet_v3_small()  # stands in for the ImageNet file
    path = tr.imagenet_weights_file("mobilenet_v3_small")
    path.parent.mkdir(parents=True)
    torch.save(weights.state_dict(), path)
    tr.ensure_imagenet_weights("mobilenet_v3_small")  # cached: returns without the network
    model = models.create("transfer", backbone="mobilenet_v3_small", init="imagenet", freeze="backbone")
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, weights.state_dict()[key]), key


def test_a_wrong_file_in_the_cache_is_a_user_error(torch_home):
    path = tr.imagenet_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(UserError) as err:
        models.create("transfer", backbone="resnet18", init="imagenet")
    assert str(path) in one_line(err)


def test_forward_mflops_grow_with_input_size():
    x = torch.zeros(1, 1, 28, 28)
    small = models.forward_mflops(models.create("transfer", backbone="resnet18", input_size=32), x)
    large = models.forward_mflops(models.create("transfer", backbone="resnet18", input_size=64), x)
    assert 50 < small < 100 and large > 3 * small


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_small"])
def test_forward_mflops_of_a_backbone_equal_torchs_counter(backbone):
    from torch.utils.flop_counter import FlopCounterMode

    model, x = models.create("transfer", backbone=backbone, input_size=32).eval(), torch.zeros(1, 1, 28, 28)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert models.forward_mflops(model, x) == pytest.approx(counter.get_total_flops() / 1e6, rel=1e-9)
