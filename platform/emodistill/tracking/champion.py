"""The one rule that picks a sweep's champion among its trials: the registered champion, `emodistill best` and
`best_generator` all choose by it."""

from __future__ import annotations

import math
import statistics

from mlflow.entities import Run

from emodistill.tracking.naming import FOLD_PARAM, setting_name, trial_index


def fold_of(run: Run) -> int | None:
    """The fold a trial (or reference) ran on; None for features with fixed splits."""
    fold = run.data.params.get(FOLD_PARAM)
    return None if fold is None else int(fold)


def score(run: Run, metric: str) -> float:
    """The run's `metric`, with a missing or NaN one ranked last (-inf)."""
    value = run.data.metrics.get(metric)
    return -math.inf if value is None or math.isnan(value) else value


def fold_means(runs: list[Run], metric: str) -> dict[int | None, float]:
    """Fold -> `metric` averaged over the runs on that fold that logged it."""
    per_fold: dict[int | None, list[float]] = {}
    for run in runs:
        value = score(run, metric)
        if not math.isinf(value):
            per_fold.setdefault(fold_of(run), []).append(value)
    return {fold: statistics.fmean(values) for fold, values in per_fold.items()}


def mean_over_folds(runs: list[Run], metric: str) -> float:
    """`metric` averaged over the runs' folds (each fold: the mean over its runs that logged it); -inf if none."""
    means = fold_means(runs, metric)
    return statistics.fmean(means.values()) if means else -math.inf


def champion_trial(trials: list[Run], metric: str) -> Run | None:
    """The finished trial with the highest `metric`; over several folds, the best trial of the setting whose `metric`
    (a dev score), averaged over its folds, is highest (ties: the earliest started). None when no finished trial
    logged it."""
    # In the order the sweep started them, whatever order the runs were read in: ties go to the earliest.
    scored = sorted((run for run in trials if run.info.status == "FINISHED" and not math.isinf(score(run, metric))),
                    key=lambda run: trial_index(run.data.tags.get("ray.trial_id", "")))
    folds = {fold_of(run) for run in scored}
    if len(folds) > 1:
        settings: dict[str, list[Run]] = {}
        for run in scored:
            settings.setdefault(setting_name(run.info.run_name), []).append(run)
        # A setting whose trial on a hard fold failed would be ranked on its easier folds alone: settings scored on
        # every fold come first.
        complete = [runs for runs in settings.values() if set(fold_means(runs, metric)) >= folds]
        scored = max(complete or settings.values(), key=lambda runs: mean_over_folds(runs, metric))
    return max(scored, key=lambda run: score(run, metric), default=None)
