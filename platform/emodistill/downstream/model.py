"""The SUPERB emotion-recognition downstream (s3prl's recipe): projector, mean pooling, linear classifier."""

from __future__ import annotations

import torch
from torch import nn


class Downstream(nn.Module):
    """Linear(D -> hidden) on every frame, masked mean over time, Linear(hidden -> n_classes)."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.dim, self.n_classes, self.hidden = dim, n_classes, hidden
        self.projector = nn.Linear(dim, hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    def config(self) -> dict:
        """The constructor arguments, for saving next to the weights."""
        return {"dim": self.dim, "n_classes": self.n_classes, "hidden": self.hidden}

    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embeddings (B, hidden): projected frames (B, T, D) averaged over the real frames in mask (B, T)."""
        h = self.projector(x)
        if mask is None:
            return h.mean(dim=1)
        weights = mask.unsqueeze(-1).to(h.dtype)
        # clamp: an utterance without frames pools to zeros instead of NaN.
        return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, n_classes) for frames x (B, T, D); mask (B, T) is True on real frames."""
        return self.classifier(self.embed(x, mask))
