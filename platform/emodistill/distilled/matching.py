"""Latent distribution matching: the latent codes of a frozen generator optimised for a budget so that the generated
set's mean embedding matches the real class's (distribution matching, Zhao & Bilen 2023), in the embeddings of the
real-data downstream and of freshly initialised decoders of every kind at each step — as GLaD (Cazenavette et al.
2023) does with a pretrained generator. The generator's weights never change: the set stays what the generator can
produce, and a prior penalty keeps each code where the generator was trained (|e|^2 near its dimension).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, Field

from emodistill.downstream import DECODERS, Downstream, build_downstream
from emodistill.downstream.batching import make_batch
from emodistill.features.dataset import FeatureSet
from emodistill.generator import TrainedGenerator
from emodistill.strict import FROZEN_CONFIG, PositiveInt


class MatchConfig(BaseModel):
    """Settings of latent distribution matching."""

    model_config = FROZEN_CONFIG

    steps: PositiveInt = 200
    lr: float = Field(default=0.05, gt=0)
    prior: float = Field(default=0.1, ge=0)  # weight of the penalty (|e|^2 / dim - 1)^2
    real_batch: PositiveInt = 64  # real utterances per class and step
    max_frames: PositiveInt = 200  # real utterances cropped to this many frames (a random window)


def _frozen(model: Downstream) -> Downstream:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _embedders(reference: Downstream, dim: int, n_classes: int, generator: torch.Generator) -> list[Downstream]:
    """The real-data downstream and one freshly initialised decoder of each kind (their pooled representations)."""
    fresh = []
    for name in DECODERS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            fresh.append(_frozen(build_downstream(name, dim, n_classes, reference.hidden)))
    return [reference, *fresh]


def match_latents(generator: TrainedGenerator, real: FeatureSet, counts: np.ndarray, reference: Downstream,
                  config: MatchConfig = MatchConfig(), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels, noise) of `counts[c]` codes per class c, optimised by distribution matching against `real`;
    `reference` is a downstream trained on the real data (its embedding is the first one matched)."""
    rng, torch_rng = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    labels = torch.from_numpy(np.repeat(np.arange(len(counts)), counts))
    noise = torch.randn(len(labels), generator.noise_dim, generator=torch_rng).requires_grad_(True)
    optimizer = torch.optim.Adam([noise], lr=config.lr)
    members = [np.flatnonzero(real.labels == c) for c in range(len(counts))]
    reference = _frozen(reference)
    for _ in range(config.steps):
        embedders = _embedders(reference, real.dim, len(counts), torch_rng)
        fake = generator.decode(labels, noise)
        loss = config.prior * torch.mean((noise.pow(2).mean(dim=1) - 1.0) ** 2)
        for c, index in enumerate(members):
            if counts[c] == 0:
                continue
            batch = make_batch(real, rng.choice(index, min(config.real_batch, len(index)), replace=False),
                               config.max_frames, rng)
            mine = fake[labels == c]
            for embed in embedders:
                with torch.no_grad():
                    target = embed.representation(batch.x, batch.mask).mean(dim=0)
                loss = loss + torch.mean((embed.representation(mine).mean(dim=0) - target) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return labels.numpy(), noise.detach().numpy()
