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
    """A family must serve the data's task; image-only settings must stay off for sequences."""
    models.check_serves(cfg.family, bundle.task, bundle.name)
    if bundle.task == "sequence" and (cfg.train.augment != "none" or cfg.train.balance != "none"):
        raise UserError("augment and balance apply to image data only; set them to none for a sequence task")


def build_model(cfg: TrialConfig, bundle: Bundle, mean: float, std: float) -> torch.nn.Module:
    check_settings(cfg, bundle)
    return models.create(cfg.family, **model_kwargs(cfg, bundle, mean, std))
