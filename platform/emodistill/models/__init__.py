"""Generators (GAN-CNN, GAN-ATT) and the WGAN-GP critic of paper Sec. 5.1."""

from __future__ import annotations

import torch
from torch import nn

from emodistill.models.config import ModelConfig
from emodistill.models.discriminator import Discriminator
from emodistill.models.gan_att import GanAttGenerator
from emodistill.models.gan_cnn import GanCnnGenerator
from emodistill.models.gaussian import GaussianGenerator
from emodistill.models.latent import make_latent
from emodistill.models.size import FLOAT32_BYTES, count_parameters, size_mb

STATS_WIDTH = 64  # units of the critic's sample-statistics branch (model.critic_stats)
GENERATORS = {"gan_cnn": GanCnnGenerator, "gan_att": GanAttGenerator, "gaussian": GaussianGenerator}


def build_generator(config: ModelConfig) -> nn.Module:
    """The generator named by `config.arch`."""
    return GENERATORS[config.arch](config)


def build_discriminator(config: ModelConfig) -> Discriminator:
    """The critic for samples of `config`'s shape and classes."""
    stats_width = STATS_WIDTH if config.critic_stats else 0
    return Discriminator(config.frames, config.dim, config.n_classes, config.d_channels, stats_width)


def training_bytes(config: ModelConfig, batch_size: int) -> int:
    """A lower bound of the memory that training `config`'s generator and critic takes: weights, gradients and
    Adam's two moments of both, and a real and a generated batch; counted on networks built without memory."""
    with torch.device("meta"):
        weights = sum(t.numel() for net in (build_generator(config), build_discriminator(config))
                      for t in net.state_dict().values())
    return (4 * weights + 2 * batch_size * config.frames * config.dim) * FLOAT32_BYTES


__all__ = [
    "Discriminator",
    "GanAttGenerator",
    "GanCnnGenerator",
    "GaussianGenerator",
    "ModelConfig",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "make_latent",
    "training_bytes",
    "size_mb",
]
