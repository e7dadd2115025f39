"""The conditional latent vector z = [y ⊕ e] of paper Sec. 4."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def make_latent(labels: torch.Tensor, noise: torch.Tensor, n_classes: int) -> torch.Tensor:
    """z = cat(one_hot(labels), noise): (B,) long labels and (B, noise_dim) noise -> (B, n_classes + noise_dim)."""
    return torch.cat([F.one_hot(labels, n_classes).to(noise.dtype), noise], dim=1)
