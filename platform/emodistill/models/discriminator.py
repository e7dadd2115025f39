"""The WGAN-GP critic with an auxiliary emotion classifier (paper Sec. 5.1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from emodistill.models.blocks import LEAK

N_LAYERS = 8
STRIDES = [1, 2] * (N_LAYERS // 2)  # halve (T, D) every other layer: 1/16 after the 8 layers
WIDTH_MULTIPLIERS = [1, 1, 2, 2, 4, 4, 4, 4]


def _halved(n: int, times: int) -> int:
    """Length after `times` stride-2, kernel-3, padding-1 convolutions (each gives ceil(n / 2))."""
    for _ in range(times):
        n = math.ceil(n / 2)
    return n


def critic_layer(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 Conv2d + layer norm over (C, H, W) + LeakyReLU; no BatchNorm, which would break the per-sample penalty."""
    # GroupNorm with one group normalises each sample over (C, H, W), exactly a LayerNorm, but keeps a per-channel
    # affine: nn.LayerNorm's per-position affine would cost C*H*W weights (9.8M on HuBERT's first layer).
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(1, c_out), nn.LeakyReLU(LEAK)
    )


class SampleStats(nn.Module):
    """Each sample's mean and std over time per feature dimension -> Linear -> LeakyReLU (a model option).

    The paper's critic normalises every layer over (C, H, W), which removes most of a sample's overall level
    and scale; but on fbank features an utterance's level (its loudness) is much of what tells the emotions
    apart, and the SUPERB downstream sees nothing but the mean frame. This branch gives the critic's heads
    those statistics unnormalised, so that both its score and its class head can hold the generator to them.
    """

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, width), nn.LeakyReLU(LEAK))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([x.mean(dim=1), x.std(dim=1)], dim=1))


class Discriminator(nn.Module):
    """x (B, T, D) as a 1-channel map -> 8 conv layers -> flatten -> (score (B,), class logits (B, C), features).

    `features` are the 8 layer activations, for feature matching (Eq. 3). With `stats_width` > 0, the heads also
    read a SampleStats branch of that width.
    """

    def __init__(self, frames: int, dim: int, n_classes: int, channels: int = 64, stats_width: int = 0):
        super().__init__()
        self.frames, self.dim, self.n_classes = frames, dim, n_classes
        widths = [channels * m for m in WIDTH_MULTIPLIERS]
        self.layers = nn.ModuleList(
            critic_layer(c_in, c_out, stride)
            for c_in, c_out, stride in zip([1, *widths[:-1]], widths, STRIDES, strict=True)
        )
        n_down = STRIDES.count(2)
        flat = widths[-1] * _halved(frames, n_down) * _halved(dim, n_down) + stats_width
        self.stats = SampleStats(dim, stats_width) if stats_width else None
        self.score_head = nn.Linear(flat, 1)
        self.class_head = nn.Linear(flat, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        if x.shape[1:] != (self.frames, self.dim):
            raise ValueError(f"Discriminator expects (B, {self.frames}, {self.dim}) inputs, got {tuple(x.shape)}")
        h = x.unsqueeze(1)
        features = []
        for layer in self.layers:
            h = layer(h)
            features.append(h)
        flat = h.flatten(1)
        if self.stats is not None:
            flat = torch.cat([flat, self.stats(x)], dim=1)
        return self.score_head(flat).squeeze(-1), self.class_head(flat), features
