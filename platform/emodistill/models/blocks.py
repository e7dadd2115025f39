"""Layers shared by both generators: the latent seed map, upsampling stages and the final crop."""

from __future__ import annotations

import math

import torch
from torch import nn

from emodistill.models.config import ModelConfig

LEAK = 0.2
N_STAGES = 4  # each stage doubles time and frequency, so the seed map is 1/16 of (T, D)


def stage_widths(channels: int) -> list[int]:
    """Channels per upsampling stage: full width on the coarse maps, narrower on the two finest (cheaper at T x D)."""
    return [channels, channels, channels // 2, channels // 4]


def conv_block(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    """Size-preserving 3x3 Conv2d + BatchNorm + LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(LEAK),
    )


def upsample_block(c_in: int, c_out: int) -> nn.Sequential:
    """ConvTranspose2d that doubles both axes + BatchNorm + LeakyReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(LEAK),
    )


def upsampling_stages(widths: list[int], dilations: list[int]) -> list[nn.Module]:
    """[upsample, conv] per stage, flattened: 2 * len(widths) layers, coarse to fine."""
    layers: list[nn.Module] = []
    c_in = widths[0]
    for width, dilation in zip(widths, dilations, strict=True):
        layers += [upsample_block(c_in, width), conv_block(width, width, dilation)]
        c_in = width
    return layers


class LatentSeed(nn.Module):
    """Projects z to a (channels, ceil(T/16), ceil(D/16)) map that the stages upsample past (T, D)."""

    def __init__(self, latent_dim: int, channels: int, frames: int, dim: int):
        super().__init__()
        scale = 2**N_STAGES
        self.shape = (channels, math.ceil(frames / scale), math.ceil(dim / scale))
        self.project = nn.Linear(latent_dim, math.prod(self.shape))
        self.norm = nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(LEAK))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm(self.project(z).view(-1, *self.shape))


class MeanPath(nn.Module):
    """A per-utterance mean frame linear in z, added to every generated frame (model option `mean_path`).

    It starts at zero, so the generator starts as the paper's; its output is scaled by GAIN, which for Adam
    is a GAIN-times larger learning rate on this path: the class-dependent level of an utterance has to move
    by a whole feature standard deviation, which a small Adam step takes thousands of steps to reach through
    the deep path (what a CPU run cannot afford).
    """

    GAIN = 10.0

    def __init__(self, latent_dim: int, dim: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # no draw from the global stream: other layers' init unchanged
            self.linear = nn.Linear(latent_dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.GAIN * self.linear(z).unsqueeze(1)

    @torch.no_grad()
    def start_at(self, class_means: torch.Tensor, factor: torch.Tensor) -> None:
        """Start as a class-conditional Gaussian: class c's one-hot gives class_means[c] (C, D), the noise e gives
        factor @ e (factor (D, noise_dim))."""
        n_classes = len(class_means)
        self.linear.weight[:, :n_classes] = class_means.T / self.GAIN
        self.linear.weight[:, n_classes:] = factor / self.GAIN
        self.linear.bias.zero_()


class GeneratorFrame(nn.Module):
    """What both generators start with: their sizes, the latent seed map and the optional mean path; subclasses
    add the body and `out`, and end their forward with `finish`.

    Subclasses create their layers after this __init__ and `out` last, so parameters are initialised in the
    order seed -> body -> out (a seed gives the same generator whatever the class layout).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_classes, self.noise_dim = config.n_classes, config.noise_dim
        self.frames, self.dim = config.frames, config.dim
        self.widths = stage_widths(config.g_channels)
        self.seed = LatentSeed(config.latent_dim, self.widths[0], self.frames, self.dim)
        self.mean_path = MeanPath(config.latent_dim, self.dim) if config.mean_path else None
        self.body_centered = config.body_centered

    def finish(self, maps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, 1, T', D') output maps -> (B, T, D) features, plus the mean path when there is one (with
        body_centered, the maps' own mean over time is taken out first)."""
        features = to_features(maps, self.frames, self.dim)
        if self.mean_path is None:
            return features
        if self.body_centered:
            features = features - features.mean(dim=1, keepdim=True)
        return features + self.mean_path(z)


def output_conv(channels: int) -> nn.Conv2d:
    """The last layer: one feature map, no tanh (SSL features are not bounded to [-1, 1])."""
    return nn.Conv2d(channels, 1, 3, padding=1)


def to_features(maps: torch.Tensor, frames: int, dim: int) -> torch.Tensor:
    """(B, 1, T', D') with T' >= T, D' >= D -> (B, T, D), cropping the upsampling overshoot."""
    return maps[:, 0, :frames, :dim]
