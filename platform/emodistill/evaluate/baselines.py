"""Real-data baselines scored by the same protocol as the generators: a random real subset and a herding
coreset at the same budget (the whole real training split is the reference, `protocol.train_reference`).

The balanced real subset of paper Table 3 (the minority class's count per class) is the random subset
at that budget: set `EvalConfig.minority_budget`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from emodistill.downstream import embed_set
from emodistill.errors import ConfigError
from emodistill.evaluate.protocol import Draw, EvalConfig, EvalResult, ReferenceResult, check_splits, evaluate_source
from emodistill.features.dataset import FeatureSet

log = logging.getLogger(__name__)


def _class_pool(train: FeatureSet, cls: int, wanted: int) -> np.ndarray:
    """Indexes of class `cls`, after checking the real split holds `wanted` of them."""
    pool = np.flatnonzero(train.labels == cls)
    if wanted > len(pool):
        raise ConfigError(f"{wanted} real '{train.label_names[cls]}' utterances requested but the training split "
                          f"holds {len(pool)}; a real subset cannot exceed the real data")
    return pool


def random_subset(train: FeatureSet, counts: np.ndarray, seed: int) -> np.ndarray:
    """Indexes of `counts[c]` utterances of each class c, drawn without replacement."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(_class_pool(train, c, int(n)), int(n), replace=False) for c, n in enumerate(counts)]
    return np.concatenate(picks)


def herding_order(x: np.ndarray) -> np.ndarray:
    """Greedy herding (Welling 2009): each step adds the point that keeps the running mean closest to the mean.

    The first point is the one nearest to the mean; any prefix of the order is the herding selection of that size.
    """
    x = np.asarray(x, dtype=np.float64)
    mean, total = x.mean(axis=0), np.zeros(x.shape[1])
    free = np.ones(len(x), dtype=bool)
    order = np.empty(len(x), dtype=np.int64)
    for k in range(len(x)):
        dist = np.linalg.norm(mean * (k + 1) - (total + x), axis=1)
        dist[~free] = np.inf
        order[k] = int(np.argmin(dist))
        free[order[k]] = False
        total += x[order[k]]
    return order


def herding_subset(train: FeatureSet, embeddings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indexes of the first `counts[c]` herding picks of each class c in the embedding space."""
    picks = []
    for c, n in enumerate(counts):
        pool = _class_pool(train, c, int(n))
        picks.append(pool[herding_order(embeddings[pool])[:int(n)]])
    return np.concatenate(picks)


def random_subset_draw(train: FeatureSet) -> Draw:
    """Draw function: a fresh random real subset per seed."""
    return lambda counts, seed: train.subset(random_subset(train, counts, seed))


def herding_draw(train: FeatureSet, embeddings: np.ndarray) -> Draw:
    """Draw function: the herding coreset (deterministic; the seed only varies the downstream's initialisation)."""
    orders = {c: np.flatnonzero(train.labels == c)[herding_order(embeddings[train.labels == c])]
              for c in range(len(train.label_names))}

    def draw(counts: np.ndarray, seed: int) -> FeatureSet:
        for c, n in enumerate(counts):
            _class_pool(train, c, int(n))
        return train.subset(np.concatenate([orders[c][:int(n)] for c, n in enumerate(counts)]))

    return draw


def evaluate_baselines(splits: Mapping[str, FeatureSet], config: EvalConfig, reference: ReferenceResult,
                       progress: bool = True) -> list[EvalResult]:
    """Random real subset and herding coreset (in the reference model's embedding) at every feasible condition.

    Conditions needing more real utterances of a class than the training split holds are skipped (logged).
    """
    check_splits(splits)
    if reference.model is None:
        raise ConfigError("herding needs the reference's trained model (a reference read from JSON has none)")
    train = splits["train"]
    log.info("embedding %d training utterances for herding", len(train))
    embeddings = embed_set(reference.model, train, device=config.downstream.device)
    sources = {"random subset": random_subset_draw(train), "herding": herding_draw(train, embeddings)}
    return [evaluate_source(name, draw, splits, config, reference, progress, skip_infeasible=True)
            for name, draw in sources.items()]
