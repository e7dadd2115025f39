"""Real training batches for the GAN: fixed-length windows of random utterances, in normalised feature space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emodistill.errors import FeatureTableError
from emodistill.features.dataset import FeatureSet

STATS_CHUNK = 1 << 18  # frames per chunk when accumulating statistics, to bound memory on large tables
MIN_STD = 1e-5  # dimensions that never vary are left unscaled instead of divided by ~0


@dataclass(frozen=True)
class Normalization:
    """Per-dimension mean and std of the real training frames.

    The critic and generator work on (x - mean) / std: fbank's log-mel values sit around -10..5 with very
    different spreads per bin, which conditions a WGAN badly; the generator artifact undoes it at sample time.
    """

    mean: np.ndarray  # (D,) float32
    std: np.ndarray  # (D,) float32

    @classmethod
    def of(cls, features: FeatureSet) -> Normalization:
        """Statistics over every frame of `features`, accumulated in float64."""
        n = features.n_frames
        if n == 0:
            raise FeatureTableError("cannot compute normalisation statistics: the training split has no frames")
        total = np.zeros(features.dim)
        squares = np.zeros(features.dim)
        # The same blocks whether the split is a table of its own or a fold's view of the corpus: same sums.
        for block in features.frame_chunks(STATS_CHUNK):
            chunk = block.astype(np.float64)
            total += chunk.sum(axis=0)
            squares += np.square(chunk).sum(axis=0)
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
        return cls(mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32))

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), the form the generator artifact stores."""
        return self.mean, self.std


def crop_or_repeat(frames: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A `length`-frame window at a random offset; shorter utterances are tiled (repeated) up to `length`.

    Tiling rather than zero-padding: zeros would be an easy tell for the critic (real windows never end in
    silence-valued frames) and the generator would learn to produce them.
    """
    n = len(frames)
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return frames[start:start + length]
    return frames[np.arange(length) % n]


class RealBatches:
    """Seeded sampler of (x (B, T, D) float32 normalised, labels (B,) long) from a FeatureSet."""

    def __init__(self, features: FeatureSet, frames: int, batch_size: int, normalization: Normalization,
                 rng: np.random.Generator, device: torch.device | str = "cpu"):
        if len(features) == 0:
            raise FeatureTableError("the training split has no utterances")
        empty = int((features.lengths == 0).sum())
        if empty:
            raise FeatureTableError(f"the training split has {empty} utterance(s) without frames")
        self.features, self.frames, self.batch_size = features, frames, batch_size
        self.mean = torch.from_numpy(normalization.mean).to(device)
        self.std = torch.from_numpy(normalization.std).to(device)
        self.rng, self.device = rng, torch.device(device)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of utterances drawn uniformly with replacement (so classes follow the real prior)."""
        index = self.rng.integers(0, len(self.features), self.batch_size)
        windows = np.stack([crop_or_repeat(self.features.utterance(i), self.frames, self.rng) for i in index])
        x = torch.from_numpy(windows.astype(np.float32, copy=False)).to(self.device)
        y = torch.from_numpy(self.features.labels[index]).to(self.device)
        return (x - self.mean) / self.std, y

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to the real feature space (what the downstream pool was trained on)."""
        return x * self.std + self.mean
