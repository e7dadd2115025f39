"""The class-conditional Gaussian generator: the baseline any distilled generator must beat.

Per class y, an utterance is a centre frame drawn from a Gaussian fitted to the real utterances' mean frames,
plus frames drawn around it from a Gaussian fitted to the real frames' deviations from their utterance's mean:

    c = μ_y + L_y e_0,   x_t = c + R_y e_t   (t = 1..T),   e_0, e_t ~ N(0, I_D),

with L_y L_yᵀ and R_y R_yᵀ the (shrunk) covariances. The SUPERB downstream is linear in an utterance's mean
frame, so this is the generative model its decision rule needs: the right class means with the right spread.
It has no weights to train; `emodistill.distill.gaussian.fit_gaussian` fits the buffers in seconds.
"""

from __future__ import annotations

import torch
from torch import nn

from emodistill.models.config import ModelConfig


class GaussianGenerator(nn.Module):
    """z = [one_hot(y) ⊕ e], e = (e_0, e_1..e_T) of (T + 1)·D standard normals -> (B, T, D) frames."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_classes, self.frames, self.dim = config.n_classes, config.frames, config.dim
        c, d = config.n_classes, config.dim
        self.register_buffer("mean", torch.zeros(c, d))  # μ_y
        self.register_buffer("centre_factor", torch.zeros(c, d, d))  # L_y
        self.register_buffer("frame_factor", torch.zeros(c, d, d))  # R_y

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        labels = z[:, :self.n_classes].argmax(dim=1)
        noise = z[:, self.n_classes:]
        e0 = noise[:, :self.dim]
        et = noise[:, self.dim:].reshape(len(z), self.frames, self.dim)
        centre = self.mean[labels] + torch.einsum("bij,bj->bi", self.centre_factor[labels], e0)
        return centre.unsqueeze(1) + torch.einsum("bij,btj->bti", self.frame_factor[labels], et)
