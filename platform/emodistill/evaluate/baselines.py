"""Baselines scored by the same protocol as the generators: the field's ladder of real-data selection at the same
budget (a random subset, herding, k-means and k-center coresets, each per class in the embedding of the reference
model), and the class-conditional Gaussian generator fitted to the real training split (the whole real training
split is the reference, `protocol.train_reference`).

The balanced real subset of paper Table 3 (the minority class's count per class) is the random subset
at that budget: set `EvalConfig.minority_budget`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from emodistill.distill import fit_gaussian_generator, load_config
from emodistill.downstream import embed_set
from emodistill.errors import ConfigError
from emodistill.evaluate.protocol import (Draw, EvalConfig, EvalResult, InfeasibleBudget, ReferenceResult, check_splits,
                                          draw_of, evaluate_source, generator_draw)
from emodistill.features.dataset import FeatureSet
from emodistill.generator import TrainedGenerator

log = logging.getLogger(__name__)

RANDOM, HERDING, KMEANS, KCENTER, GAUSSIAN = "random", "herding", "kmeans", "kcenter", "gaussian"  # names in results
SELECTIONS = (RANDOM, HERDING, KMEANS, KCENTER)  # the real-data selection ladder
KMEANS_INITS = 4  # k-means restarts per class and seed (the best inertia is kept)


def check_feasible(train: FeatureSet, counts: np.ndarray) -> None:
    """Raise InfeasibleBudget when a class has fewer real training utterances than `counts` asks for."""
    for name, wanted, held in zip(train.label_names, counts, train.class_counts()):
        if wanted > held:
            raise InfeasibleBudget(f"{wanted} real '{name}' utterances requested but the training split holds "
                                   f"{held}; a real subset cannot exceed the real data")


def random_subset(train: FeatureSet, counts: np.ndarray, seed: int) -> np.ndarray:
    """Indexes of `counts[c]` utterances of each class c, drawn without replacement."""
    check_feasible(train, counts)
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(train.labels == c), int(n), replace=False)
                           for c, n in enumerate(counts)])


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


def class_herding_orders(train: FeatureSet, embeddings: np.ndarray) -> list[np.ndarray]:
    """Per class, the training indexes of that class in herding order of their embeddings."""
    return class_orders(train, embeddings, herding_order)


def _first(train: FeatureSet, orders: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    check_feasible(train, counts)
    return np.concatenate([order[:int(n)] for order, n in zip(orders, counts)])


def herding_subset(train: FeatureSet, embeddings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indexes of the first `counts[c]` herding picks of each class c in the embedding space."""
    return _first(train, class_herding_orders(train, embeddings), counts)


def nearest_to_mean(x: np.ndarray) -> int:
    """Index of the row of `x` nearest to the mean of its rows."""
    return int(np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)))


def kcenter_order(x: np.ndarray) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018): start at the point nearest the mean, then repeatedly add the point
    farthest from those chosen; any prefix of the order is the k-center selection of that size."""
    x = np.asarray(x, dtype=np.float64)
    order = np.empty(len(x), dtype=np.int64)
    order[0] = nearest_to_mean(x)
    distance = np.linalg.norm(x - x[order[0]], axis=1)
    for k in range(1, len(x)):
        distance[order[:k]] = -np.inf
        order[k] = int(np.argmax(distance))
        distance = np.minimum(distance, np.linalg.norm(x - x[order[k]], axis=1))
    return order


def kmeans_selection(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k distinct rows of `x`: the one nearest each centroid of a seeded k-means (k = 1: the row nearest the mean)."""
    from sklearn.cluster import KMeans  # scikit-learn only where k-means runs

    x = np.asarray(x, dtype=np.float64)
    if k == 1:
        return np.array([nearest_to_mean(x)])
    centroids = KMeans(k, n_init=KMEANS_INITS, random_state=seed).fit(x).cluster_centers_
    distance = np.linalg.norm(x[None, :, :] - centroids[:, None, :], axis=2)  # (k, N)
    chosen: list[int] = []
    for row in distance:  # the nearest utterance not taken by an earlier centroid
        row = row.copy()
        row[chosen] = np.inf
        chosen.append(int(np.argmin(row)))
    return np.array(chosen)


def class_orders(train: FeatureSet, embeddings: np.ndarray, order) -> list[np.ndarray]:
    """Per class, the training indexes of that class in `order(embeddings of the class)`."""
    members = [np.flatnonzero(train.labels == c) for c in range(len(train.label_names))]
    return [index[order(embeddings[index])] for index in members]


def random_subset_draw(train: FeatureSet) -> Draw:
    """Draw function: a fresh random real subset per seed."""
    return lambda counts, seed: train.subset(random_subset(train, counts, seed))


def ordered_draw(train: FeatureSet, orders: list[np.ndarray]) -> Draw:
    """Draw function: the first `counts[c]` of each class's order (deterministic; the seed only varies the
    downstream's initialisation)."""
    return lambda counts, seed: train.subset(_first(train, orders, counts))


def herding_draw(train: FeatureSet, embeddings: np.ndarray) -> Draw:
    """Draw function: the herding coreset."""
    return ordered_draw(train, class_herding_orders(train, embeddings))  # once: every budget is a prefix


def kcenter_draw(train: FeatureSet, embeddings: np.ndarray) -> Draw:
    """Draw function: the k-center coreset (deterministic, as herding)."""
    return ordered_draw(train, class_orders(train, embeddings, kcenter_order))


def kmeans_draw(train: FeatureSet, embeddings: np.ndarray) -> Draw:
    """Draw function: per class, the real utterances nearest the centroids of a k-means seeded by the draw's seed."""
    members = [np.flatnonzero(train.labels == c) for c in range(len(train.label_names))]

    def draw(counts: np.ndarray, seed: int) -> FeatureSet:
        check_feasible(train, counts)
        chosen = [index[kmeans_selection(embeddings[index], int(n), seed)] for index, n in zip(members, counts) if n]
        return train.subset(np.concatenate(chosen) if chosen else np.zeros(0, np.int64))

    return draw


def selection_draws(train: FeatureSet, embeddings: np.ndarray) -> dict[str, Draw]:
    """The real-data selection ladder, by name: random, herding, k-means, k-center."""
    return {RANDOM: random_subset_draw(train), HERDING: herding_draw(train, embeddings),
            KMEANS: kmeans_draw(train, embeddings), KCENTER: kcenter_draw(train, embeddings)}


def gaussian_baseline(train: FeatureSet, frames: int | None = None) -> TrainedGenerator:
    """The class-conditional Gaussian generator fitted to `train`; `frames` per sample (default: median length)."""
    frames = gaussian_frames(train, frames)
    return fit_gaussian_generator(train, load_config(None, ["model.arch=gaussian", f"model.frames={frames}"]))


def gaussian_frames(train: FeatureSet, frames: int | None = None) -> int:
    """Frames per sample of the Gaussian baseline: `frames`, else the median length of `train` (at least 8)."""
    return frames or max(int(np.median(train.lengths)), 8)


def evaluate_baselines(splits: Mapping[str, FeatureSet], config: EvalConfig, reference: ReferenceResult,
                       progress: bool = True) -> list[EvalResult]:
    """The selection ladder (in the reference model's embedding) and the Gaussian generator.

    Conditions needing more real utterances of a class than the training split holds are skipped (logged).
    """
    check_splits(splits)
    if reference.model is None:
        raise ConfigError("the selection baselines need the reference's trained model (a reference read from JSON "
                          "has none)")
    train = splits["train"]
    log.info("embedding %d training utterances for the selection baselines", len(train))
    embeddings = embed_set(reference.model, train, device=config.downstream.device)
    gaussian = gaussian_baseline(train, config.gaussian_frames)
    sources = {**selection_draws(train, embeddings), GAUSSIAN: generator_draw(gaussian, train.label_names)}
    if config.select.method != "iid":  # what the GAN adds over a Gaussian given the same budget-aware selection
        sources[f"{GAUSSIAN}-{config.select.method}"] = draw_of(gaussian, splits, config, reference)
    return [evaluate_source(name, draw, splits, config, reference, progress, skip_infeasible=True)
            for name, draw in sources.items()]
