"""The mode-seeking diversity penalty: paper Eq. (7)."""

from __future__ import annotations

import torch

EPS = 1e-8


def _mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |a - b| over all non-batch elements: (B,)."""
    return (a - b).abs().flatten(1).mean(dim=1)


def diversity_loss(
    out1: torch.Tensor, out2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, tau: float
) -> torch.Tensor:
    """Eq. (7): -mean_j min(|g(z1_j) - g(z2_j)| / |z1_j - z2_j|, tau), with out_k = g(z_k).

    The paper compares noises of the same class: the caller passes pairs z1_j, z2_j with the same label.
    Both distances are per-sample L1 *means* (divided by the element count), so the ratio does not grow with
    T·D or the latent size and one tau suits every feature shape. tau caps the reward for stability.
    """
    ratio = _mean_abs_diff(out1, out2) / _mean_abs_diff(z1, z2).clamp_min(EPS)
    return -ratio.clamp(max=tau).mean()
