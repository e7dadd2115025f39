"""Padded tensor batches from a FeatureSet's back-to-back frames, gathered without per-frame loops."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from emodistill.features.dataset import FeatureSet


@dataclass(frozen=True)
class Batch:
    """Frames x (B, T, D) float32 zero-padded to the longest utterance, mask (B, T) True on real frames, labels y,
    and the utterances' positions in their FeatureSet."""

    x: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor
    index: np.ndarray | None = None

    def to(self, device: torch.device) -> Batch:
        """The same batch on `device`."""
        return Batch(self.x.to(device), self.mask.to(device), self.y.to(device), self.index)


def make_batch(fs: FeatureSet, index: np.ndarray, max_frames: int | None = None,
               rng: np.random.Generator | None = None) -> Batch:
    """The utterances at `index`; with max_frames and rng, longer ones are cropped at a random start."""
    index = np.asarray(index, dtype=np.int64)
    starts, lengths = fs.starts[index], fs.lengths[index]
    if max_frames is not None and rng is not None:
        spare = np.maximum(lengths - max_frames, 0)
        starts = starts + rng.integers(0, spare + 1)
        lengths = np.minimum(lengths, max_frames)
    steps = np.arange(max(int(lengths.max(initial=0)), 1))
    mask = steps[None, :] < lengths[:, None]
    # Padding positions repeat the utterance's last frame (always a valid row), then are zeroed.
    rows = starts[:, None] + np.minimum(steps[None, :], np.maximum(lengths[:, None] - 1, 0))
    x = fs.frames[rows].astype(np.float32, copy=False)
    x[~mask] = 0.0
    return Batch(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(fs.labels[index]), index)


def train_batches(fs: FeatureSet, batch_size: int, rng: np.random.Generator,
                  max_frames: int | None = None) -> Iterator[Batch]:
    """Endless shuffled batches, a fresh permutation each epoch, cropped to max_frames."""
    while True:
        order = rng.permutation(len(fs))
        for start in range(0, len(order), batch_size):
            yield make_batch(fs, order[start:start + batch_size], max_frames, rng)


def eval_batches(fs: FeatureSet, batch_size: int) -> Iterator[tuple[np.ndarray, Batch]]:
    """(index, batch) pairs covering every utterance once, uncropped; grouped by length to pad little."""
    order = np.argsort(fs.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        yield index, make_batch(fs, index)
