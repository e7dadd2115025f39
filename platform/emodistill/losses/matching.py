"""Terms that pull generated samples towards real ones: paper Eqs. (3) and (6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_matching(feats_real: list[torch.Tensor], feats_fake: list[torch.Tensor]) -> torch.Tensor:
    """Eq. (3): (1/M) Σ_l mean |d_l(x) - d_l(g(z))| over the critic's M layers; real features are constants."""
    if len(feats_real) != len(feats_fake) or not feats_real:
        raise ValueError(f"feature_matching needs equally many layers, got {len(feats_real)} and {len(feats_fake)}")
    per_layer = [(real.detach() - fake).abs().mean() for real, fake in zip(feats_real, feats_fake)]
    return torch.stack(per_layer).mean()


def sml_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Eq. (6), softmax matching: (1/B) Σ_j KL(softmax(f(x_j)) || softmax(f(g(z_j)))); the real side is a constant.

    Row j of both inputs comes from the same downstream checkpoint f; the caller pairs x_j and z_j by class.
    """
    log_p = F.log_softmax(logits_real.detach(), dim=1)
    log_q = F.log_softmax(logits_fake, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
