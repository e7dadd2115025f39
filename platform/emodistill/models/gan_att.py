"""GAN-ATT generator (paper Sec. 5.1): GAN-CNN with 128 channels, dilation and one self-attention over time."""

from __future__ import annotations

import torch
from torch import nn

from emodistill.models.blocks import GeneratorFrame, output_conv, upsampling_stages
from emodistill.models.config import ModelConfig

DILATIONS = [1, 2, 4, 8]  # one per stage: the receptive field grows without extra layers
ATTENTION_AFTER = 4  # "one self-attention operation over the time dimension after the 4-th CNN layer"


class TimeSelfAttention(nn.Module):
    """Multi-head self-attention along time, separately for each frequency row; residual + LayerNorm.

    Each (frequency row, time step) is a token of `channels` features, so every feature row sees the whole
    utterance ("long temporal context over each feature dimension") for 4·C² weights, independent of D.
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        tokens = x.permute(0, 3, 2, 1).reshape(b * f, t, c)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        tokens = self.norm(tokens + attended)
        return tokens.reshape(b, f, t, c).permute(0, 3, 2, 1)


class GanAttGenerator(GeneratorFrame):
    """z (B, n_classes + noise_dim) -> seed map -> 4 conv layers -> time attention -> 4 conv layers -> (B, T, D)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        layers = upsampling_stages(self.widths, DILATIONS)
        self.head = nn.Sequential(*layers[:ATTENTION_AFTER])
        self.attention = TimeSelfAttention(self.widths[ATTENTION_AFTER // 2 - 1], config.attention_heads)
        self.tail = nn.Sequential(*layers[ATTENTION_AFTER:])
        self.out = output_conv(self.widths[-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        maps = self.tail(self.attention(self.head(self.seed(z))))
        return self.finish(self.out(maps), z)
