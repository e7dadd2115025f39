"""GAN-CNN generator (paper Sec. 5.1): transposed convolutions and convolutions only."""

from __future__ import annotations

import torch
from torch import nn

from emodistill.models.blocks import LatentSeed, N_STAGES, stage_widths, to_features, upsampling_stages
from emodistill.models.config import ModelConfig


class GanCnnGenerator(nn.Module):
    """z (B, n_classes + noise_dim) -> seed map -> 4 x [ConvTranspose2d x2, Conv2d] -> 1 channel -> (B, T, D)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_classes, self.noise_dim = config.n_classes, config.noise_dim
        self.frames, self.dim = config.frames, config.dim
        widths = stage_widths(config.g_channels)
        self.seed = LatentSeed(config.latent_dim, widths[0], self.frames, self.dim)
        self.body = nn.Sequential(*upsampling_stages(widths, [1] * N_STAGES))
        # No tanh: SSL features are not bounded to [-1, 1].
        self.out = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return to_features(self.out(self.body(self.seed(z))), self.frames, self.dim)
