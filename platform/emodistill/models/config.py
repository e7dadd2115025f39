"""Architecture settings shared by the generators and the critic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from emodistill.strict import CONFIG, Int

# Paper Sec. 5.1: GAN-CNN uses 256 channels, GAN-ATT reduces them to 128.
PAPER_G_CHANNELS = {"gan_cnn": 256, "gan_att": 128}


class ModelConfig(BaseModel):
    """Generator/discriminator architecture; `g_channels=None` resolves to the paper's width for `arch`."""

    model_config = CONFIG

    # gaussian: the fitted class-conditional Gaussian baseline (models/gaussian.py), no GAN; it ignores the
    # channel and attention settings, and its noise is (frames + 1) * dim standard normals.
    arch: Literal["gan_cnn", "gan_att", "gaussian"] = "gan_att"
    frames: Int = Field(ge=8, description="T, frames per generated sample")
    dim: Int = Field(ge=8, description="D, feature dimension per frame")
    n_classes: Int = Field(ge=2)
    noise_dim: Int = Field(default=100, ge=1)
    g_channels: Int | None = Field(default=None, ge=8)
    d_channels: Int = Field(default=64, ge=1)
    attention_heads: Int = Field(default=4, ge=1)
    # Beyond the paper (both off in its configuration; see benchmarks/RESULTS.md for what they buy):
    # the critic also sees each sample's per-dimension mean and std over time, which its LayerNorms hide ...
    critic_stats: bool = False
    # ... and the generator adds a per-utterance mean frame, linear in z, to its output ...
    mean_path: bool = False
    # ... which starts at zero, or ("gaussian") at the class-conditional Gaussian of the real utterance means: the
    # one-hot part of z gives each class's mean, the noise part the leading principal axes of their spread.
    mean_path_init: Literal["zero", "gaussian"] = "zero"
    # ... and, with body_centered, the convolutional body's output is centred over time per utterance, so that an
    # utterance's mean frame is the mean path's alone and the body shapes only how frames vary around it.
    body_centered: bool = False

    @model_validator(mode="after")
    def _mean_path_init_needs_the_path(self) -> ModelConfig:
        if self.mean_path_init != "zero" and not self.mean_path:
            raise ValueError(f"mean_path_init {self.mean_path_init!r} needs mean_path: true")
        if self.body_centered and not self.mean_path:
            raise ValueError("body_centered needs mean_path: true (the level of every utterance would be zero)")
        return self

    @model_validator(mode="after")
    def _resolve_channels(self) -> ModelConfig:
        if self.arch == "gaussian":
            self.noise_dim = (self.frames + 1) * self.dim
            return self
        if self.g_channels is None:
            self.g_channels = PAPER_G_CHANNELS[self.arch]
        if self.g_channels % 4:
            # The generator narrows to g_channels/2 and g_channels/4 in its two finest stages.
            raise ValueError(f"g_channels must be a multiple of 4, got {self.g_channels}")
        if self.arch == "gan_att" and self.g_channels % self.attention_heads:
            raise ValueError(
                f"g_channels ({self.g_channels}) must be divisible by attention_heads ({self.attention_heads}) "
                "for gan_att: the self-attention embeds each time step with g_channels features"
            )
        return self

    @property
    def latent_dim(self) -> int:
        """Size of z = [one-hot label ⊕ noise]."""
        return self.n_classes + self.noise_dim
