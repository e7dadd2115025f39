"""Fitting the class-conditional Gaussian generator (models/gaussian.py) to a training split, in normalised space."""

from __future__ import annotations

import numpy as np
import torch

from emodistill.distill.data import STATS_CHUNK, Normalization
from emodistill.errors import FeatureTableError
from emodistill.features.dataset import FeatureSet
from emodistill.models import GaussianGenerator, ModelConfig

JITTER = 1e-6  # relative ridge on the diagonal so that a rank-deficient covariance still has a Cholesky factor


def utterance_means(features: FeatureSet, normalization: Normalization) -> np.ndarray:
    """(N, D) float64: each utterance's mean frame, normalised."""
    # Per utterance, as np.add.reduceat sums each segment: a fold's view of the corpus gives the same means.
    sums = np.stack([features.utterance(i).astype(np.float64).sum(axis=0) for i in range(len(features))]) \
        if len(features) else np.zeros((0, features.dim))
    return (sums / features.lengths[:, None] - normalization.mean) / normalization.std


def frame_scatter(features: FeatureSet, index: np.ndarray, means: np.ndarray,
                  normalization: Normalization) -> tuple[np.ndarray, int]:
    """Sum of outer products of the normalised frames of utterances `index` around their utterance's mean, and count."""
    dim = features.dim
    scatter, count = np.zeros((dim, dim)), 0
    batch, frames = [], 0
    for i in index:
        batch.append((features.utterance(i) - normalization.mean) / normalization.std - means[i])
        frames += len(batch[-1])
        if frames >= STATS_CHUNK or i == index[-1]:
            block = np.concatenate(batch).astype(np.float64)
            scatter += block.T @ block
            count += len(block)
            batch, frames = [], 0
    return scatter, count


def cholesky(covariance: np.ndarray) -> torch.Tensor:
    """Lower Cholesky factor of a covariance (float32), with a small ridge for numerical safety."""
    ridge = JITTER * max(float(np.trace(covariance)) / len(covariance), 1e-12)
    return torch.from_numpy(np.linalg.cholesky(covariance + ridge * np.eye(len(covariance))).astype(np.float32))


def fit_gaussian(features: FeatureSet, model_config: ModelConfig, normalization: Normalization) -> GaussianGenerator:
    """Per class: the Ledoit-Wolf covariance of the utterance means, and the covariance of frames around them."""
    counts = features.class_counts()
    empty = int((features.lengths == 0).sum())
    if empty:
        raise FeatureTableError(f"the training split has {empty} utterance(s) without frames")
    if (counts < 2).any():
        few = [name for name, n in zip(features.label_names, counts) if n < 2]
        raise FeatureTableError(f"a Gaussian per class needs at least 2 training utterances of each class; "
                                f"{few} have fewer")
    from sklearn.covariance import ledoit_wolf  # 1.4 s to import: only where a Gaussian is fitted

    module = GaussianGenerator(model_config)
    means = utterance_means(features, normalization)
    for c in range(len(features.label_names)):
        index = np.flatnonzero(features.labels == c)
        centre_cov, _ = ledoit_wolf(means[index])  # few utterances per class against D dims: shrink
        scatter, count = frame_scatter(features, index, means, normalization)
        module.mean[c] = torch.from_numpy(means[index].mean(axis=0).astype(np.float32))
        module.centre_factor[c] = cholesky(centre_cov)
        module.frame_factor[c] = cholesky(scatter / max(count - 1, 1))  # many frames per dim: no shrinkage needed
    return module.eval()


def mean_path_start(features: FeatureSet, normalization: Normalization, noise_dim: int) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """(class means (C, D), factor (D, noise_dim)) of the normalised utterance means: the factor's columns are the
    leading principal axes of their pooled within-class covariance, each scaled by its standard deviation (a
    generator's mean path started there draws utterance means from that Gaussian)."""
    means = utterance_means(features, normalization)
    classes = np.stack([means[features.labels == c].mean(axis=0) for c in range(len(features.label_names))])
    within = means - classes[features.labels]
    values, vectors = np.linalg.eigh(within.T @ within / max(len(within) - 1, 1))
    order = np.argsort(values)[::-1][:noise_dim]
    factor = np.zeros((features.dim, noise_dim))
    factor[:, :len(order)] = vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))
    return classes.astype(np.float32), factor.astype(np.float32)
