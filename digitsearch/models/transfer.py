"""The transfer family: an ImageNet backbone from torchvision with a new head.

The users' reports fine-tuned a frozen VGG16 on digits upsampled to 56x56x3. Here the
backbone (resnet18, vgg16, mobilenet_v3_small), its starting weights (ImageNet, scratch,
or a checkpoint of an earlier run on another dataset), what stays frozen and the input
size are all kwargs, so "pretrained or not, frozen or not" becomes a searchable choice.

ImageNet weights come through torchvision's own cache (torch.hub.get_dir()/checkpoints,
which honours TORCH_HOME); `ensure_imagenet_weights` fetches them once on the driver, and
a machine without them gets one line saying which file to put where.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from digitsearch.errors import UserError
from digitsearch.models._layers import dense_head
from digitsearch.models._registry import InvalidArchitecture, register

INITS = ("imagenet", "scratch", "checkpoint:PATH")
FREEZES = ("backbone", "last-stage", "none")
# every backbone here halves its input five times; below 32 px VGG's last pool has nothing left
MIN_INPUT_SIZE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 15.0


def _tvm():
    # torchvision is imported when a transfer model is built, not when the family registers:
    # every process of a search imports the model registry, and torchvision costs each ~1 s
    from torchvision import models

    return models


def _vgg16_trunk() -> nn.Module:
    """vgg16() without its classifier: building that 120M-parameter block costs 2 s and 0.5 GB."""
    from torchvision.models.vgg import cfgs as vgg_cfgs
    from torchvision.models.vgg import make_layers as vgg_layers

    trunk = nn.Module()
    trunk.features = vgg_layers(vgg_cfgs["D"], batch_norm=False)
    for m in trunk.features.modules():  # the initialisation torchvision's VGG gives its convs
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
    return trunk


def _resnet18_trunk() -> nn.Module:
    trunk = _tvm().resnet18(weights=None)
    trunk.fc = nn.Identity()
    return trunk


def _mobilenet_v3_small_trunk() -> nn.Module:
    trunk = _tvm().mobilenet_v3_small(weights=None)
    trunk.classifier = nn.Identity()
    return trunk


def _resnet_features(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))
    return trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(x))))


def _features_attr(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return trunk.features(x)


@dataclass(frozen=True)
class Backbone:
    # a torchvision model minus its classifier; its state-dict names are torchvision's,
    # so torchvision's ImageNet files and plain state dicts load into it as they are
    build: Callable[[], nn.Module]
    weights: str  # torchvision's weights enum member, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    width: int  # channels of the final feature map
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # 3-channel images -> feature map
    # what freeze=last-stage leaves trainable: the blocks at the backbone's final resolution
    last_stage: Callable[[nn.Module], nn.Module]


BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone(_resnet18_trunk, "ResNet18_Weights.IMAGENET1K_V1", 512, _resnet_features,
                         lambda trunk: trunk.layer4),
    "vgg16": Backbone(_vgg16_trunk, "VGG16_Weights.IMAGENET1K_V1", 512, _features_attr,
                      lambda trunk: trunk.features[24:]),  # conv5_1..conv5_3 and the last pool
    "mobilenet_v3_small": Backbone(_mobilenet_v3_small_trunk, "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
                                   576, _features_attr, lambda trunk: trunk.features[9:]),
}


def _backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; transfer takes: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _checkpoint_path(init: str) -> Path:
    return Path(init[len("checkpoint:"):]).expanduser()


def check_init(init: str) -> None:
    """UserError for an unknown init, or a checkpoint:PATH whose file is not there."""
    if init in ("imagenet", "scratch"):
        return
    if init.startswith("checkpoint:"):
        path = _checkpoint_path(init)
        if not path.is_file():
            raise UserError(f"init {init!r}: checkpoint file {path} not found")
        return
    raise UserError(f"unknown init {init!r}; transfer takes: {', '.join(INITS)}")


def _weights_url(backbone: str) -> str:
    return _tvm().get_weight(_backbone(backbone).weights).url


def imagenet_weights_file(backbone: str) -> Path:
    """Where torchvision's cache keeps the backbone's ImageNet weights (TORCH_HOME/hub/checkpoints/...)."""
    name = os.path.basename(urlparse(_weights_url(backbone)).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def ensure_imagenet_weights(backbone: str, progress: bool = True, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download the ImageNet weights into torchvision's cache unless they are there; offline -> UserError."""
    path = imagenet_weights_file(backbone)
    if path.is_file():
        return
    url = _weights_url(backbone)
    match = torch.hub.HASH_REGEX.search(path.name)  # torchvision names files <name>-<sha256 prefix>.pth
    # urllib has no overall timeout; the socket default bounds each connect and read, so an
    # offline or firewalled machine fails in seconds while a slow but live download goes on
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # writes a temporary file and moves it into place: a broken download leaves no half file
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None,
                                       progress=progress)
    except Exception as err:  # URLError, timeouts, hash mismatch, a read-only cache: all one answer
        raise UserError(
            f"ImageNet weights for {backbone} are not available: {path.name} is not in {path.parent} "
            f"and downloading {url} failed ({_one_line(err)}); download that file into that folder "
            f"(it is $TORCH_HOME/hub/checkpoints; TORCH_HOME defaults to ~/.cache/torch), or use init scratch"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _read_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a file: plain, or inside digitsearch's model.pt / trial checkpoint."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise UserError(f"{what} {path} is not a file torch.load(weights_only=True) can read "
                        f"({type(err).__name__}); save weights with torch.save(model.state_dict(), path)") from None
    if isinstance(saved, dict) and isinstance(saved.get("state_dict"), dict):
        saved = saved["state_dict"]  # {"format": "digitsearch-model/1", ...} and trial checkpoints
    if not isinstance(saved, dict):
        raise UserError(f"{what} {path} holds a {type(saved).__name__}, not a state dict")
    return {key: value for key, value in saved.items() if isinstance(value, torch.Tensor)}


def _strip(key: str) -> str:
    # "backbone." from a digitsearch transfer model; "module." from nn.DataParallel
    for prefix in ("module.", "backbone."):
        key = key.removeprefix(prefix)
    return key


def _matching(trunk: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors whose name and shape fit the trunk; heads (other class counts) fall out here."""
    own = trunk.state_dict()
    picked = {}
    for key, tensor in tensors.items():
        name = _strip(key)
        if name in own and own[name].shape == tensor.shape:
            picked[name] = tensor
    return picked


def _load_checkpoint(trunk: nn.Module, path: Path, backbone: str) -> None:
    picked = _matching(trunk, _read_tensors(path, "checkpoint"))
    if not picked:
        raise UserError(f"checkpoint {path} has no tensor whose name and shape fit the {backbone} backbone; "
                        f"was it saved from another backbone?")
    trunk.load_state_dict(picked, strict=False)


def _load_imagenet(trunk: nn.Module, backbone: str) -> None:
    ensure_imagenet_weights(backbone, progress=False)
    path = imagenet_weights_file(backbone)
    picked = _matching(trunk, _read_tensors(path, "ImageNet weights file"))
    missing = set(trunk.state_dict()) - set(picked)
    if missing:
        raise UserError(f"{path} does not hold ImageNet {backbone} weights ({len(missing)} tensors missing "
                        f"or of another shape); delete it and run again to download it afresh")
    trunk.load_state_dict(picked)


def _head(features: int, head_width: int, dropout: float, num_classes: int) -> nn.Sequential:
    hidden = [head_width] if head_width > 0 else []
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), *dense_head(features, hidden, dropout, num_classes))


class TransferNet(nn.Module):
    def __init__(self, backbone: str, trunk: nn.Module, head: nn.Sequential, freeze: str, input_size: int,
                 in_channels: int, input_mean: float, input_std: float):
        super().__init__()
        self.backbone_name, self.freeze, self.input_size, self.in_channels = backbone, freeze, input_size, in_channels
        self.backbone, self.head = trunk, head
        # the engine standardises with the dataset's own mean/std; pretrained filters expect
        # [0, 1] pixels standardised with ImageNet's, so forward undoes one and applies the other.
        # Buffers: they follow .to(device) and travel in state_dict (an exported model keeps them)
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if freeze != "none":
            self.backbone.requires_grad_(False)
            if freeze == "last-stage":
                BACKBONES[backbone].last_stage(self.backbone).requires_grad_(True)

    def train(self, mode: bool = True) -> "TransferNet":
        super().train(mode)
        if self.freeze != "none":
            # a frozen BatchNorm in train mode would still drift its running statistics to the
            # new data under the frozen layers' feet; keep those in eval, as Keras does
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_std + self.input_mean  # back to [0, 1] pixels
        if x.shape[-2:] != (self.input_size, self.input_size):
            # antialias only matters (and only costs) where a side shrinks, e.g. 84 wide -> 32
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=max(x.shape[-2:]) > self.input_size)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # gray -> the RGB the backbone was trained on
        x = (x - self.imagenet_mean) / self.imagenet_std
        return self.head(BACKBONES[self.backbone_name].features(self.backbone, x))


@register("transfer")
def transfer(
    backbone: str = "resnet18",
    init: str = "scratch",
    freeze: str = "none",
    input_size: int = 32,
    head_width: int = 256,
    dropout: float = 0.2,
    input_mean: float = 0.0,
    input_std: float = 1.0,
    num_classes: int = 10,
    image_size: int | Sequence[int] = 28,
    in_channels: int = 1,
) -> TransferNet:
    """Transfer learning: resnet18/vgg16/mobilenet_v3_small, ImageNet/scratch/checkpoint init, freeze, new head."""
    spec = _backbone(backbone)
    check_init(init)
    if freeze not in FREEZES:
        raise UserError(f"unknown freeze {freeze!r}; transfer takes: {', '.join(FREEZES)}")
    if in_channels not in (1, 3):
        raise UserError(f"transfer backbones take gray or RGB images, not {in_channels} channels")
    if input_size < MIN_INPUT_SIZE:
        raise InvalidArchitecture(f"input_size {input_size} is below {MIN_INPUT_SIZE}: "
                                  f"{backbone}'s five halvings leave nothing")
    if head_width < 0 or not 0.0 <= dropout < 1.0:
        raise InvalidArchitecture(f"head_width must be >= 0 and dropout in [0, 1), not {head_width} and {dropout}")
    # image_size is accepted but not needed: the upsampling makes every input input_size square
    trunk = spec.build()
    if init == "imagenet":
        _load_imagenet(trunk, backbone)
    elif init.startswith("checkpoint:"):
        _load_checkpoint(trunk, _checkpoint_path(init), backbone)
    head = _head(spec.width, head_width, dropout, num_classes)
    return TransferNet(backbone, trunk, head, freeze, input_size, in_channels, input_mean, input_std)
