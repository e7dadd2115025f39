"""Significance and spread: McNemar's test between two classifiers, t-based confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on the correctness of two classifiers over the same utterances."""

    table: tuple[tuple[int, int], tuple[int, int]]  # [[both right, a right b wrong], [a wrong b right, both wrong]]
    b: int  # a right, b wrong
    c: int  # a wrong, b right
    statistic: float  # exact: min(b, c); otherwise the chi-square statistic
    pvalue: float
    exact: bool


def mcnemar(y_true, pred_a, pred_b, exact: bool = True, correction: bool = True) -> McNemarResult:
    """Two-sided McNemar test (exact binomial, or chi-square with optional continuity correction), as statsmodels."""
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if y_true.ndim != 1 or not y_true.shape == pred_a.shape == pred_b.shape:
        raise ValueError(f"y_true, pred_a and pred_b must be 1-D of equal length, "
                         f"got shapes {y_true.shape}, {pred_a.shape}, {pred_b.shape}")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    both = int(np.sum(right_a & right_b))
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    neither = len(y_true) - both - b - c
    if exact:
        statistic = float(min(b, c))
        pvalue = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))
    elif b + c == 0:
        # statsmodels divides by zero here (statistic inf, p 0); with no discordant pairs there is no evidence.
        statistic, pvalue = 0.0, 1.0
    else:
        statistic = (abs(b - c) - int(correction)) ** 2 / (b + c)
        pvalue = float(stats.chi2.sf(statistic, 1))
    return McNemarResult(table=((both, b), (c, neither)), b=b, c=c, statistic=statistic, pvalue=pvalue, exact=exact)


class MeanCI(NamedTuple):
    """Mean, sample standard deviation and the two-sided t confidence interval of the mean."""

    mean: float
    std: float
    low: float
    high: float


def mean_ci(values, confidence: float = 0.95) -> MeanCI:
    """Mean, std (ddof 1) and t-distribution confidence interval; one value gives std 0 and CI (mean, mean)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) == 0:
        raise ValueError("mean_ci needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(values.mean())
    if len(values) == 1:
        return MeanCI(mean, 0.0, mean, mean)
    std = float(values.std(ddof=1))
    half = ci_half_width(std, len(values), confidence)
    return MeanCI(mean, std, mean - half, mean + half)


def ci_half_width(std: float, n: int, confidence: float = 0.95) -> float:
    """Half the width of the two-sided t confidence interval of a mean of `n` values whose sample std is `std`."""
    if n < 2:
        raise ValueError(f"a confidence interval needs at least two values, got {n}")
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
