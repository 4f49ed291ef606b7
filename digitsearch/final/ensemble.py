"""Several retrained nets, and test-time augmentation, served as one model.

`best --retrain --ensemble K` averages the softmax probabilities of the leaderboard's top K
configs; `--tta` also averages each net's probabilities over a few views of every image (the
image itself, shifted one pixel up, down, left and right, and mirrored where the dataset
allows it). Both live inside one `Ensemble` module, so model.pt, `predict` and the TorchScript
and ONNX exports serve them with no code of their own: it takes the standardised input of a
single model and returns the log of the averaged probabilities, so argmax and softmax mean
what they mean for a single model's logits.

The views are plain slicing and concatenation (no grid_sample), which every exporter
handles and which is exact: a shifted image repeats its edge row, as the engine's
augmentation pads with the border (edge pixels are background, whatever the normalisation
made of 0).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from digitsearch import models
from digitsearch.core import engine

FAMILY = "ensemble"  # model.pt's family for an Ensemble; not a searchable family (models registers none)
IDENTITY = ("identity",)
SHIFTS = ("up", "down", "left", "right")  # one pixel each
FLIP = "flip"  # left-right mirror: only where Bundle.mirror_safe (clothing yes, digits no)
VIEWS = (*IDENTITY, *SHIFTS, FLIP)


def tta_views(mirror_safe: bool) -> tuple[str, ...]:
    """The views `--tta` averages over on a dataset: mirrored images only where they stay their class."""
    return (*IDENTITY, *SHIFTS, *((FLIP,) if mirror_safe else ()))


def view(x: Tensor, name: str) -> Tensor:
    """One view of a batch of images (N, C, H, W): the content moved one pixel, the edge repeated."""
    if name == "identity":
        return x
    if name == "up":
        return torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    if name == "down":
        return torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2)
    if name == "left":
        return torch.cat([x[:, :, :, 1:], x[:, :, :, -1:]], dim=3)
    if name == "right":
        return torch.cat([x[:, :, :, :1], x[:, :, :, :-1]], dim=3)
    if name == FLIP:
        return torch.flip(x, dims=[3])
    raise ValueError(f"unknown test-time view {name!r}; known: {', '.join(VIEWS)}")


class Ensemble(nn.Module):
    """Members (image models of one input shape and class count) and the views each one sees."""

    def __init__(self, members: Sequence[nn.Module], views: Sequence[str] = IDENTITY):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        for name in views:
            view(torch.zeros(1, 1, 2, 2), name)  # an unknown name fails here, not at the first prediction
        self.members = nn.ModuleList(members)
        self.views = tuple(views)

    def member_log_probs(self, x: Tensor) -> Tensor:
        """(members, views, N, classes): every member's log-probabilities on every view of x."""
        batch = torch.cat([view(x, name) for name in self.views], dim=0)  # one forward per member
        per_member = []
        for member in self.members:
            logits = member(batch).float()  # full precision whatever autocast computed in
            per_member.append(F.log_softmax(logits, dim=1).reshape(len(self.views), -1, logits.shape[-1]))
        return torch.stack(per_member)

    def forward(self, x: Tensor) -> Tensor:
        """log of the probabilities averaged over members and views (logsumexp: no log(0) = -inf)."""
        scores = self.member_log_probs(x)
        count = scores.shape[0] * scores.shape[1]
        return torch.logsumexp(scores.flatten(0, 1), dim=0) - math.log(count)


def model_args(members: Sequence[tuple[str, dict]], views: Sequence[str]) -> dict:
    """What model.pt records to rebuild an Ensemble: each member's family and kwargs, and the views."""
    return {"members": [{"family": family, "model_args": dict(kwargs)} for family, kwargs in members],
            "tta": {"views": list(views)}}


def rebuild(args: dict) -> Ensemble:
    """An Ensemble from model.pt's model_args (weights not loaded yet)."""
    members = [models.create(member["family"], **member["model_args"]) for member in args["members"]]
    return Ensemble(members, args.get("tta", {}).get("views", IDENTITY))


def log_probs(model: Ensemble, x: Tensor, batch_size: int = engine.EVAL_BATCH) -> Tensor:
    """member_log_probs over a whole split, in batches of `batch_size` images (times the views), on the CPU."""
    model.eval()
    step = max(1, batch_size // len(model.views))
    with torch.inference_mode(), engine.autocast(x.device):
        return torch.cat([model.member_log_probs(x[i : i + step]).cpu() for i in range(0, len(x), step)], dim=2)


def combine(scores: Tensor) -> dict[str, Tensor]:
    """From (members, views, N, classes) log-probabilities: the predictions (N,) of the whole
    ensemble, of it on the plain images only (views[0] is the identity), and of each member alone."""
    def argmax_of_mean(log_probs: Tensor, dims) -> Tensor:
        return torch.logsumexp(log_probs, dim=dims).argmax(-1)

    return {"served": argmax_of_mean(scores, (0, 1)), "no_tta": argmax_of_mean(scores[:, :1], (0, 1)),
            "members": argmax_of_mean(scores, 1)}
