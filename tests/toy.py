"""Toy building blocks shared by the tests: feature metadata and an untrained micro generator artifact."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from emodistill.features.schema import FeatureMeta
from emodistill.generator import save_generator
from emodistill.models import ModelConfig, build_generator

LABELS = ("neu", "hap", "ang", "sad")
PRIOR = (0.4, 0.3, 0.2, 0.1)


def toy_meta(dim: int, labels=LABELS, **changes) -> FeatureMeta:
    """Metadata of a toy fbank-like feature table of dimension `dim` (any field overridable)."""
    fields = {"corpus": "toy", "upstream": "fbank", "upstream_config": {}, "layer": None, "sample_rate": 16000,
              "frame_rate": 100.0, "dim": dim, "labels": list(labels), **changes}
    return FeatureMeta(**fields)


def save_micro_generator(out_dir: Path, dim: int, frames: int = 16, seed: int = 0, meta: FeatureMeta | None = None,
                         **artifact) -> tuple[nn.Module, Path]:
    """An untrained micro GAN-CNN saved as a generator artifact; `artifact` overrides save_generator's fields."""
    torch.manual_seed(seed)
    config = ModelConfig(arch="gan_cnn", frames=frames, dim=dim, n_classes=len(LABELS), noise_dim=8, g_channels=8,
                         d_channels=4).model_dump()
    module = build_generator(ModelConfig(**config))
    fields = {"label_names": LABELS, "class_prior": list(PRIOR),
              "feature_meta": asdict(meta or toy_meta(dim, split="train")), "normalization": None,
              "training_config": {}, "metrics": {}, **artifact}
    return module, save_generator(module, out_dir, model_config=config, **fields)
