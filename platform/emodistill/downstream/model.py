"""The emotion downstreams (decoders) of s3prl's emotion recipe, one family chosen by name.

Every decoder projects each frame with Linear(D -> hidden) (s3prl's projector) and then pools and classifies:

- `linear`: masked mean pooling, Linear(hidden -> C) — SUPERB's head, the default and the L_SML pool's;
- `attentive`: attentive pooling (s3prl's AttentivePooling: softmax over time of W·ReLU(W_a·h)), Linear;
- `cnn_self_attention`: s3prl's CNNSelfAttention (average pooling by 5, three 1-D convolutions of 80 channels,
  self-attention pooling, a two-layer classifier, dropout 0.4);
- `mean_std_mlp`: the mean and standard deviation of the projected frames, a two-layer MLP.

Only `linear` sees nothing but an utterance's mean frame; the others see how frames vary and follow each other, so
data that trains them must have that structure too.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emodistill.errors import ConfigError

DecoderName = Literal["linear", "attentive", "cnn_self_attention", "mean_std_mlp"]
NEG_INF = -1e9  # attention logit of padding frames (finite: a row of padding alone stays finite)


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the mean over the frames marked True in mask (B, T); all frames without a mask."""
    if mask is None:
        return h.mean(dim=1)
    weights = mask.unsqueeze(-1).to(h.dtype)
    # clamp: an utterance without frames pools to zeros instead of NaN.
    return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def attention_pool(h: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) frames weighted by softmax over time of logits (B, T), padding frames excluded."""
    if mask is not None:
        logits = logits.masked_fill(~mask, NEG_INF)
    return (h * torch.softmax(logits, dim=1).unsqueeze(-1)).sum(dim=1)


class Downstream(nn.Module):
    """A decoder: Linear(D -> hidden) on every frame, the subclass's pooling to one vector per utterance (`pool`),
    and its `classifier` on that vector."""

    name: ClassVar[str]

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.dim, self.n_classes, self.hidden = dim, n_classes, hidden
        self.projector = nn.Linear(dim, hidden)

    def config(self) -> dict:
        """The constructor arguments and the decoder's name, for saving next to the weights."""
        return {"decoder": self.name, "dim": self.dim, "n_classes": self.n_classes, "hidden": self.hidden}

    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embeddings (B, hidden): the projected frames averaged over the real frames in mask (B, T)."""
        # The projector is affine, so the mean of the projected frames is the projection of the mean frame: D
        # numbers per utterance go through it instead of T x D.
        return self.projector(masked_mean(x, mask))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, n_classes) for frames x (B, T, D); mask (B, T) is True on real frames."""
        return self.classifier(self.representation(x, mask))

    def representation(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """What the classifier reads (B, P): the decoder's pooling of the projected frames."""
        return self.pool(self.projector(x), mask)

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """One vector per utterance from the projected frames h (B, T, hidden)."""
        raise NotImplementedError


class MeanPoolLinear(Downstream):
    """SUPERB's emotion head: masked mean pooling, Linear(hidden -> C)."""

    name = "linear"

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__(dim, n_classes, hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    def representation(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled embedding (the mean frame, projected: see `embed`)."""
        return self.embed(x, mask)

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return masked_mean(h, mask)


class AttentivePooling(Downstream):
    """s3prl's AttentivePooling: frame weights softmax(W·ReLU(W_a·h)) over time, Linear(hidden -> C)."""

    name = "attentive"

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__(dim, n_classes, hidden)
        self.attend = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.classifier = nn.Linear(hidden, n_classes)

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return attention_pool(h, self.attend(h).squeeze(-1), mask)


class CNNSelfAttention(Downstream):
    """s3prl's CNNSelfAttention (its emotion recipe's DeepModel): average pooling over POOL frames, three 1-D
    convolutions, self-attention pooling, Linear-ReLU-Linear. Unlike s3prl, padding frames are zeroed after every
    convolution, so that an utterance's logits do not depend on the length it is padded to."""

    name = "cnn_self_attention"
    CHANNELS, KERNEL, POOL, DROPOUT = 80, 5, 5, 0.4  # s3prl's emotion config

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__(dim, n_classes, hidden)
        c, k, pad = self.CHANNELS, self.KERNEL, self.KERNEL // 2
        self.average = nn.AvgPool1d(self.POOL, self.POOL, pad)
        self.dropout = nn.Dropout(self.DROPOUT)
        self.convolutions = nn.ModuleList(nn.Conv1d(c_in, c, k, padding=pad) for c_in in (hidden, c, c))
        self.attend = nn.Linear(c, 1)
        self.classifier = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, n_classes))

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None:
            h = h * mask.unsqueeze(-1).to(h.dtype)  # padding frames are zeros, as s3prl pads the projected frames
        x = self.average(h.transpose(1, 2))  # (B, hidden, ceil(T / POOL))
        pooled = None
        if mask is not None:  # a pooled frame is real when its window starts within the utterance
            pooled = torch.arange(x.shape[2], device=h.device)[None, :] * self.POOL < mask.sum(dim=1)[:, None]
        for i, convolution in enumerate(self.convolutions):
            x = convolution(self.dropout(x))
            if pooled is not None:
                x = x * pooled.unsqueeze(1).to(x.dtype)
            if i < len(self.convolutions) - 1:
                x = torch.relu(x)
        frames = x.transpose(1, 2)  # (B, ceil(T / POOL), CHANNELS)
        return attention_pool(frames, self.attend(frames).squeeze(-1), pooled)


class MeanStdMLP(Downstream):
    """The mean and standard deviation over time of the projected frames, Linear-ReLU-Linear."""

    name = "mean_std_mlp"

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__(dim, n_classes, hidden)
        self.classifier = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        mean = masked_mean(h, mask)
        std = masked_mean(torch.square(h - mean.unsqueeze(1)), mask).clamp_min(1e-8).sqrt()
        return torch.cat([mean, std], dim=1)


DECODERS: dict[str, type[Downstream]] = {cls.name: cls for cls in
                                         (MeanPoolLinear, AttentivePooling, CNNSelfAttention, MeanStdMLP)}
DEFAULT_DECODER = "linear"


def build_downstream(decoder: str, dim: int, n_classes: int, hidden: int = 256) -> Downstream:
    """A new, randomly initialised decoder of that name (see DECODERS)."""
    if decoder not in DECODERS:
        raise ConfigError(f"unknown decoder {decoder!r}; expected one of {sorted(DECODERS)}")
    return DECODERS[decoder](dim, n_classes, hidden)
