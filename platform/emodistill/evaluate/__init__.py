"""Evaluation: UAR, McNemar's test and confidence intervals (protocols build on these)."""

from emodistill.downstream.metrics import confusion_matrix, uar
from emodistill.evaluate.stats import McNemarResult, MeanCI, mcnemar, mean_ci

__all__ = ["uar", "confusion_matrix", "mcnemar", "McNemarResult", "mean_ci", "MeanCI"]
