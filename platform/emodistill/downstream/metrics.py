"""Classification metrics: the paper reports UAR (unweighted average recall)."""

from __future__ import annotations

import numpy as np


def _paired_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got shapes {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes) with rows = true class and columns = predicted class."""
    y_true, y_pred = _paired_labels(y_true, y_pred)
    y_true, y_pred = y_true.astype(np.int64), y_pred.astype(np.int64)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"{name} holds class indexes outside [0, {n_classes})")
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def uar(y_true, y_pred) -> float:
    """Unweighted average recall: mean recall over the classes present in y_true, in [0, 1]."""
    y_true, y_pred = _paired_labels(y_true, y_pred)
    # Any label type works (ints or strings): map the union of labels to indexes first.
    classes, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    matrix = confusion_matrix(codes[:len(y_true)], codes[len(y_true):], len(classes))
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def accuracy(y_true, y_pred) -> float:
    """Share of correct predictions, in [0, 1] (SUPERB reports emotion recognition by it)."""
    y_true, y_pred = _paired_labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))
