"""Sampling synthetic feature tables from a trained generator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from tqdm.auto import tqdm

from emodistill.errors import ConfigError
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import FeatureMeta, feature_schema
from emodistill.features.store import build_table, write_tables
from emodistill.models import count_parameters, make_latent
from emodistill.memory import check_memory

ROW_OVERHEAD_BYTES = 64  # an Arrow row's strings (utt_id, speaker, label), offsets and validity bits, rounded up


def check_sample_memory(n: int, frames: int, dim: int, what: str) -> None:
    """Raise unless `n` generated utterances of `frames` x `dim` fit in memory (twice: while they are concatenated)."""
    check_memory(2 * n * frames * dim * np.dtype(np.float32).itemsize,
                 f"{what}: {n} utterances of {frames} x {dim} frames",
                 "ask for fewer utterances per class (`emodistill sample` streams any number to a file)")


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` into integer counts proportional to `weights` that sum exactly to `total`."""
    share = total * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.floor(share).astype(np.int64)
    # Ties go to the earlier class (stable sort), so the split is deterministic.
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def class_counts(ppc: int | Mapping[str, int], label_names: tuple[str, ...], class_prior: np.ndarray,
                 balanced: bool = True, total: int | None = None) -> np.ndarray:
    """Utterances to draw per class: `ppc` each (balanced), the real prior at ppc * C (imbalanced), or a mapping."""
    if isinstance(ppc, Mapping):
        if not balanced or total is not None:
            raise ConfigError("sample: a ppc mapping gives the counts itself; drop balanced=False / total")
        unknown = sorted(set(ppc) - set(label_names))
        if unknown:
            raise ConfigError(f"sample: ppc mapping has label(s) {unknown} not in the label set {list(label_names)}")
        counts = np.array([ppc.get(name, 0) for name in label_names], dtype=np.int64)
    else:
        if isinstance(ppc, bool) or not isinstance(ppc, (int, np.integer)):
            raise ConfigError(f"sample: ppc must be an int or a mapping label -> count, got {ppc!r}")
        if ppc < 0:
            raise ConfigError(f"sample: ppc must be >= 0, got {ppc}")
        n = len(label_names) * int(ppc) if total is None else total
        if n < 0:
            raise ConfigError(f"sample: total must be >= 0, got {n}")
        weights = np.ones(len(label_names)) if balanced else np.asarray(class_prior, dtype=np.float64)
        counts = largest_remainder(n, weights)
    if (counts < 0).any():
        bad = {name: int(c) for name, c in zip(label_names, counts) if c < 0}
        raise ConfigError(f"sample: counts must be >= 0, got {bad}")
    return counts


def noise_generator(seed: int) -> torch.Generator:
    """The CPU generator of a sample's noise (the same draw on every device), seeded by `seed` in [0, 2^63)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ConfigError(f"sample: seed must be an integer in [0, 2^63), got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


@dataclass
class TrainedGenerator:
    """A loaded generator artifact: the module plus what is needed to sample feature tables from it."""

    module: nn.Module  # maps latents to (B, frames, dim) in normalised feature space, in eval mode
    config: dict[str, Any]  # the artifact's config.json
    device: torch.device

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class labels, in the order of the one-hot latent."""
        return tuple(self.config["label_names"])

    @property
    def class_prior(self) -> np.ndarray:
        """Class frequencies of the real training split (sums to 1)."""
        return np.asarray(self.config["class_prior"], dtype=np.float64)

    @property
    def num_parameters(self) -> int:
        """Parameter elements of the generator."""
        return count_parameters(self.module)

    @property
    def size_bytes(self) -> int:
        """Bytes of the generator's weights and buffers."""
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def feature_meta(self) -> FeatureMeta:
        """Schema metadata of the tables this generator samples (the source table's, split 'synthetic')."""
        meta = FeatureMeta(**self.config["feature_meta"])
        return replace(meta, split="synthetic", created=self.config["created"])

    @property
    def noise_dim(self) -> int:
        """Size of the noise part of the latent z = [one_hot(y) ⊕ noise]."""
        return self.config["model"]["noise_dim"]

    def decode(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Features (n, frames, dim) in the real feature space for class indexes `labels` and latent `noise` (n,
        noise_dim), differentiable in the noise (the latent optimisation of distilled sets goes through it)."""
        x = self.module(make_latent(labels.to(self.device), noise.to(self.device), len(self.label_names))).float()
        norm = self.config["normalization"]
        if norm:
            x = x * torch.tensor(norm["std"], device=x.device) + torch.tensor(norm["mean"], device=x.device)
        return x

    @torch.no_grad()
    def _generate_batch(self, labels: np.ndarray, rng: torch.Generator) -> np.ndarray:
        """Features (n, frames, dim) float32 in the real feature space; noise drawn from `rng` on the CPU."""
        y = torch.as_tensor(labels, dtype=torch.long)
        noise = torch.randn(len(y), self.noise_dim, generator=rng)
        features = self.decode(y, noise).cpu().numpy()
        if not np.isfinite(features).all():
            raise ConfigError("generator: its samples hold NaN or infinite values (weights or config.json's "
                              "normalization too large for float32: a damaged or hand-edited artifact)")
        return features

    def generate(self, labels: np.ndarray, seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """Features (N, frames, dim) float32 in the real feature space for the given label indexes."""
        rng = noise_generator(seed)
        out = [self._generate_batch(labels[start:start + batch_size], rng)
               for start in range(0, len(labels), batch_size)]
        frames, dim = self.config["model"]["frames"], self.config["model"]["dim"]
        return np.concatenate(out) if out else np.zeros((0, frames, dim), np.float32)

    def sample_batches(self, ppc: int | Mapping[str, int], balanced: bool = True, seed: int = 0,
                       total: int | None = None, batch_size: int = 256) -> Iterator[pa.Table]:
        """`sample(...)` as consecutive tables of at most `batch_size` utterances, so memory stays bounded."""
        counts = class_counts(ppc, self.label_names, self.class_prior, balanced, total)
        return self._tables(counts, seed, batch_size)

    def _tables(self, counts: np.ndarray, seed: int, batch_size: int) -> Iterator[pa.Table]:
        """Tables of at most `batch_size` utterances holding `counts[c]` of class c, in class order."""
        if batch_size < 1:
            raise ConfigError(f"sample: batch_size must be >= 1, got {batch_size}")
        # Utterance k is of the class whose cumulative count first exceeds k; working that out per batch keeps
        # memory bounded by the batch (arrays over all N utterances took gigabytes for a large ppc).
        ends = np.cumsum(counts)
        total = int(ends[-1]) if len(ends) else 0
        self.check_memory(min(batch_size, total), f"sample: a batch of batch_size {batch_size}")
        rng = noise_generator(seed)  # one stream across batches: batch_size never changes the draw
        meta = self.feature_meta
        for start in range(0, total, batch_size):
            position = np.arange(start, min(start + batch_size, total))
            batch = np.searchsorted(ends, position, side="right")
            index_in_class = position - (ends - counts)[batch]
            features = self._generate_batch(batch, rng)
            items = (
                ({"utt_id": f"syn_{self.label_names[y]}_{i:06d}", "speaker": "synthetic", "gender": None,
                  "session": None, "label": self.label_names[y]}, x)
                for y, i, x in zip(batch, index_in_class, features)
            )
            yield build_table(items, meta)

    def sample(self, ppc: int | Mapping[str, int], balanced: bool = True, seed: int = 0,
               total: int | None = None, batch_size: int = 256) -> pa.Table:
        """A synthetic feature table: `ppc` utterances per class (or the real prior when balanced=False)."""
        tables = list(self._tables(self._counts_in_memory(ppc, balanced, total), seed, batch_size))
        return pa.concat_tables(tables) if tables else build_table([], self.feature_meta)

    def write_sample(self, path: str | Path, ppc: int | Mapping[str, int], balanced: bool = True, seed: int = 0,
                     total: int | None = None, batch_size: int = 256, progress: bool = False) -> Path:
        """Stream `sample(...)` into an Arrow file batch by batch (atomically); the same table, any size."""
        counts = class_counts(ppc, self.label_names, self.class_prior, balanced, total)
        batches = self._tables(counts, seed, batch_size)
        with tqdm(total=int(counts.sum()), unit="utt", desc="sampling", disable=not progress) as bar:
            return write_tables(_counted(batches, bar), feature_schema(self.feature_meta), path,
                                expected_bytes=int(counts.sum()) * self._bytes_per_utterance())

    def _bytes_per_utterance(self) -> int:
        """About what one sampled utterance takes in an Arrow file: its frames plus its ids and offsets."""
        model, dtype = self.config["model"], np.dtype(self.feature_meta.dtype)
        return model["frames"] * model["dim"] * dtype.itemsize + ROW_OVERHEAD_BYTES

    def sample_features(self, ppc: int | Mapping[str, int], balanced: bool = True, seed: int = 0,
                        total: int | None = None, batch_size: int = 256) -> FeatureSet:
        """`sample(...)` as a FeatureSet straight from the generated arrays (no Arrow table), for training."""
        counts = self._counts_in_memory(ppc, balanced, total)
        labels = np.repeat(np.arange(len(counts)), counts)
        return self.feature_set(labels, self.generate(labels, seed, batch_size))

    def _counts_in_memory(self, ppc: int | Mapping[str, int], balanced: bool, total: int | None) -> np.ndarray:
        """class_counts for this generator, once that many utterances fit in memory at once."""
        counts = class_counts(ppc, self.label_names, self.class_prior, balanced, total)
        self.check_memory(int(counts.sum()))
        return counts

    def check_memory(self, n: int, what: str = "sample") -> None:
        """Raise unless `n` generated utterances fit in memory at once."""
        check_sample_memory(n, self.config["model"]["frames"], self.config["model"]["dim"], what)

    def feature_set(self, labels: np.ndarray, features: np.ndarray) -> FeatureSet:
        """Generated features (N, frames, dim) of class indexes `labels` (grouped by class) as a FeatureSet named
        like a sample's utterances."""
        n, frames, dim = features.shape
        counts = np.bincount(labels, minlength=len(self.label_names))
        index_in_class = np.concatenate([np.arange(c) for c in counts]) if n else np.zeros(0, np.int64)
        return FeatureSet.packed(features.reshape(n * frames, dim), np.arange(n + 1) * frames,
                                 np.asarray(labels, np.int64), self.label_names, ("synthetic",) * n,
                                 tuple(f"syn_{self.label_names[y]}_{i:06d}" for y, i in zip(labels, index_in_class)),
                                 self.feature_meta)


def _counted(tables: Iterator[pa.Table], bar: tqdm) -> Iterator[pa.Table]:
    """Pass `tables` through, advancing `bar` by their rows."""
    for table in tables:
        bar.update(table.num_rows)
        yield table
