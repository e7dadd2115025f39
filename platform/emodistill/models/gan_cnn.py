"""GAN-CNN generator (paper Sec. 5.1): transposed convolutions and convolutions only."""

from __future__ import annotations

import torch
from torch import nn

from emodistill.models.blocks import N_STAGES, GeneratorFrame, output_conv, upsampling_stages
from emodistill.models.config import ModelConfig


class GanCnnGenerator(GeneratorFrame):
    """z (B, n_classes + noise_dim) -> seed map -> 4 x [ConvTranspose2d x2, Conv2d] -> 1 channel -> (B, T, D)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.body = nn.Sequential(*upsampling_stages(self.widths, [1] * N_STAGES))
        self.out = output_conv(self.widths[-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.finish(self.out(self.body(self.seed(z))), z)
