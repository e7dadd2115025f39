"""Evaluation (paper Sec. 5): UAR at ppc budgets with McNemar and CIs, real-data baselines, the speaker-ID
privacy probe, the cost report, and the report's tables and figures."""

from emodistill.downstream.metrics import confusion_matrix, uar
from emodistill.evaluate.baselines import evaluate_baselines, herding_subset, random_subset
from emodistill.evaluate.privacy import ProbeResult, privacy_probe, speaker_probe
from emodistill.evaluate.protocol import (EvalConfig, EvalResult, ReferenceResult, compare_predictions,
                                          evaluate_generator, train_reference)
from emodistill.evaluate.stats import McNemarResult, MeanCI, mcnemar, mean_ci
from emodistill.evaluate.suite import evaluate_all

__all__ = [
    "uar", "confusion_matrix", "mcnemar", "McNemarResult", "mean_ci", "MeanCI",
    "EvalConfig", "EvalResult", "ReferenceResult", "evaluate_generator", "train_reference", "compare_predictions",
    "evaluate_baselines", "random_subset", "herding_subset", "privacy_probe", "speaker_probe", "ProbeResult",
    "evaluate_all",
]
