"""Find a sweep's best trial and load its generator."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from mlflow.entities import Run

from emodistill.errors import EmodistillError
from emodistill.generator import TrainedGenerator, load
from emodistill.tracking.registry import load_champion
from emodistill.tracking.runs import KIND_TAG, download_generator
from emodistill.tracking.store import reading_client, search_all_runs


def best_run(experiment: str, metric: str = "uar_ppc100", tracking_uri: str | None = None) -> Run:
    """The finished trial with the highest `metric` (NaN values are ignored)."""
    client = reading_client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise EmodistillError(f"no experiment {experiment!r} in {client.tracking_uri}; existing: {names}")
    trials = search_all_runs(client, found.experiment_id, f"tags.`{KIND_TAG}` = 'trial'")
    finished = [run for run in trials if run.info.status == "FINISHED"]
    scored = [run for run in finished if not math.isnan(run.data.metrics.get(metric, math.nan))]
    if not scored:
        statuses = dict(Counter(run.info.status for run in trials))
        metrics = sorted({key for run in finished for key in run.data.metrics})
        raise EmodistillError(f"experiment {experiment!r}: no finished trial has metric {metric!r} "
                              f"(trials by status: {statuses}; metrics of finished trials: {metrics})")
    return max(scored, key=lambda run: run.data.metrics[metric])


def best_generator(experiment: str, metric: str = "uar_ppc100", tracking_uri: str | None = None,
                   champion: bool = False, model_name: str | None = None,
                   cache_dir: str | Path | None = None) -> TrainedGenerator:
    """The best trial's generator, or with champion=True the registry's champion (`model_name`: the experiment's)."""
    if champion:
        return load_champion(model_name or experiment, tracking_uri, cache_dir)
    run = best_run(experiment, metric, tracking_uri)
    return load(download_generator(run.info.run_id, tracking_uri, cache_dir))
