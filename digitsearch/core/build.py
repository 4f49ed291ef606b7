"""config + data -> model: what a trial and the retrain both build, with what the data decide.

The search's trainable and `best --retrain` call the same function, so a retrained model is
exactly the net its trial trained.
"""
from __future__ import annotations

import torch

from digitsearch import models
from digitsearch.core.config import TrialConfig
from digitsearch.data.bundle import Bundle
from digitsearch.errors import UserError


def model_kwargs(cfg: TrialConfig, bundle: Bundle, mean: float, std: float) -> dict:
    """The config's model kwargs plus what the data decide: shapes, and for families that
    undo the input standardisation (transfer applies ImageNet's instead), its mean and std."""
    kwargs = {**cfg.model_args, **bundle.model_args()}
    if models.takes(cfg.family, "input_mean"):
        kwargs.update(input_mean=float(mean), input_std=float(std))
    return kwargs


def check_settings(cfg: TrialConfig, bundle: Bundle) -> None:
    """A family must serve the data's task; image-only settings must stay off for sequences;
    flips only on data whose mirror images keep their class."""
    models.check_serves(cfg.family, bundle.task, bundle.name)
    s = cfg.train
    if bundle.task == "sequence" and (s.augment != "none" or s.balance != "none" or s.erasing > 0 or s.flip):
        raise UserError("augment, erasing, flip and balance apply to image data only; turn them off for a "
                        "sequence task")
    if s.flip and not bundle.mirror_safe:
        raise UserError(flip_refused(bundle.name))


def flip_refused(dataset: str) -> str:
    return (f"flip: {dataset} is not mirror-safe (a mirrored digit or character is not its class); flips are "
            f"only for data registered as mirror-safe, such as fashion-mnist; set flip to false")


def build_model(cfg: TrialConfig, bundle: Bundle, mean: float, std: float) -> torch.nn.Module:
    check_settings(cfg, bundle)
    return models.create(cfg.family, **model_kwargs(cfg, bundle, mean, std))
