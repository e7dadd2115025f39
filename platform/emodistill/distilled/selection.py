"""Choosing k of many generated candidates of one class so that they match or cover the real class, in an embedding
(utterance vectors; the real-data downstream's pooled projector outputs). Each picker is greedy and deterministic
given its inputs; any tie goes to the earlier candidate."""

from __future__ import annotations

import numpy as np


def herding_pick(candidates: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """k distinct candidates whose running mean tracks `target` (the real class mean), as herding does."""
    x = np.asarray(candidates, dtype=np.float64)
    total, chosen = np.zeros(x.shape[1]), []
    for j in range(k):
        distance = np.linalg.norm(target * (j + 1) - (total + x), axis=1)
        distance[chosen] = np.inf
        chosen.append(int(np.argmin(distance)))
        total += x[chosen[-1]]
    return np.array(chosen, dtype=np.int64)


def cover_pick(candidates: np.ndarray, real: np.ndarray, k: int) -> np.ndarray:
    """k distinct candidates that cover the real class: greedily, the one that most lowers the mean distance of the
    real utterances to their nearest chosen candidate (facility location; k = 1: the candidate nearest all of them)."""
    x = np.asarray(candidates, dtype=np.float64)
    distance = np.linalg.norm(np.asarray(real, np.float64)[:, None, :] - x[None, :, :], axis=2)  # (N real, M)
    nearest, chosen = np.full(len(distance), np.inf), []
    for _ in range(k):
        cost = np.minimum(nearest[:, None], distance).mean(axis=0)
        cost[chosen] = np.inf
        chosen.append(int(np.argmin(cost)))
        nearest = np.minimum(nearest, distance[:, chosen[-1]])
    return np.array(chosen, dtype=np.int64)


def moments_pick(candidates: np.ndarray, real: np.ndarray, k: int) -> np.ndarray:
    """k distinct candidates whose mean and second moment match the real class's: greedily, the one that brings the
    set's first and second moments closest to the real ones (the squared distance of the means over the real total
    variance, that of the second moments over the real one's squared norm)."""
    x, r = np.asarray(candidates, dtype=np.float64), np.asarray(real, dtype=np.float64)
    mean, second = r.mean(axis=0), r.T @ r / len(r)
    mean_scale, second_scale = max(float(np.trace(second) - mean @ mean), 1e-12), max(float(np.sum(second**2)), 1e-12)
    total, outer, chosen = np.zeros(x.shape[1]), np.zeros((x.shape[1],) * 2), []
    for j in range(k):
        n = j + 1
        means = (total + x) / n  # (M, E): the set's mean with each candidate added
        mean_cost = np.sum((means - mean) ** 2, axis=1) / mean_scale
        # ||(outer + x x^T) / n - second||_F^2 for every candidate x, without forming M matrices.
        base = outer / n - second
        second_cost = (np.sum(base ** 2) + 2 * np.einsum("mi,ij,mj->m", x, base, x) / n
                       + np.sum(x ** 2, axis=1) ** 2 / n ** 2) / second_scale
        cost = mean_cost + second_cost
        cost[chosen] = np.inf
        chosen.append(int(np.argmin(cost)))
        total += x[chosen[-1]]
        outer += np.outer(x[chosen[-1]], x[chosen[-1]])
    return np.array(chosen, dtype=np.int64)


PICKERS = {"herding": lambda candidates, real, k: herding_pick(candidates, real.mean(axis=0), k),
           "cover": cover_pick, "moments": moments_pick}
