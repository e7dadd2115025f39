"""Conditional WGAN-GP terms: paper Eqs. (1), (2), (4) and (5)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. (1) without the penalty: E[d(g(z))] - E[d(x)], minimised by the critic."""
    return d_fake.mean() - d_real.mean()


def generator_adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. (2): -E[d(g(z))], minimised by the generator."""
    return -d_fake.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_GP of Eq. (1): E[(||∇ critic(x̂)||_2 - 1)^2] at x̂ = a·real + (1-a)·fake, a ~ U(0, 1) per sample.

    `critic` maps a batch to scores (B,). Both inputs are detached, so the penalty trains only the critic;
    the graph of the input gradient is kept (create_graph) so that backward reaches the critic's weights.
    Pass `generator` (on the inputs' device) for reproducible interpolation weights.
    """
    a = torch.rand(real.shape[0], generator=generator, device=real.device, dtype=real.dtype)
    a = a.view(-1, *[1] * (real.dim() - 1))
    x_hat = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def class_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The CE(d_class(·), y) terms of Eqs. (4) and (5), averaged over the batch."""
    return F.cross_entropy(logits, labels)
