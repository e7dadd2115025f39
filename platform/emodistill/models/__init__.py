"""Generators (GAN-CNN, GAN-ATT) and the WGAN-GP critic of paper Sec. 5.1."""

from __future__ import annotations

from torch import nn

from emodistill.models.config import ModelConfig
from emodistill.models.discriminator import Discriminator
from emodistill.models.gan_att import GanAttGenerator
from emodistill.models.gan_cnn import GanCnnGenerator
from emodistill.models.gaussian import GaussianGenerator
from emodistill.models.latent import make_latent
from emodistill.models.size import count_parameters, size_mb

STATS_WIDTH = 64  # units of the critic's sample-statistics branch (model.critic_stats)
GENERATORS = {"gan_cnn": GanCnnGenerator, "gan_att": GanAttGenerator, "gaussian": GaussianGenerator}


def build_generator(config: ModelConfig) -> nn.Module:
    """The generator named by `config.arch`."""
    return GENERATORS[config.arch](config)


def build_discriminator(config: ModelConfig) -> Discriminator:
    """The critic for samples of `config`'s shape and classes."""
    stats_width = STATS_WIDTH if config.critic_stats else 0
    return Discriminator(config.frames, config.dim, config.n_classes, config.d_channels, stats_width)


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
    "size_mb",
]
