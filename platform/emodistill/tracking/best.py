"""Find a sweep's best trial and load its generator or one of its distilled sets."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pyarrow as pa
from mlflow import MlflowClient
from mlflow.entities import Run

from emodistill.errors import EmodistillError
from emodistill.generator import TrainedGenerator, load
from emodistill.tracking.registry import load_champion
from emodistill.tracking.runs import KIND_TAG, download_generator
from emodistill.tracking.store import reading_client, search_all_runs


DEFAULT_OBJECTIVE = "dev_uar_ppc100"
OBJECTIVE_PARAM = "objective.metric"  # a sweep's parent run records its objective under this param


def find_experiment_id(client: MlflowClient, experiment: str) -> str:
    """The id of the experiment named `experiment`; an error naming those that exist if there is none."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise EmodistillError(f"no experiment {experiment!r} in {client.tracking_uri}; existing: {names}")
    return found.experiment_id


def latest_sweep(client: MlflowClient, experiment_id: str) -> Run | None:
    """The parent run of the experiment's most recently started sweep, if any."""
    parents = client.search_runs([experiment_id], f"tags.`{KIND_TAG}` = 'sweep'", max_results=1,
                                 order_by=["attributes.start_time DESC"])
    return parents[0] if parents else None


def sweep_objective(experiment: str, tracking_uri: str | None = None) -> str:
    """The objective the experiment's latest sweep recorded (its parent run's param), else dev_uar_ppc100."""
    client = reading_client(tracking_uri)
    parent = latest_sweep(client, find_experiment_id(client, experiment))
    return parent.data.params.get(OBJECTIVE_PARAM, DEFAULT_OBJECTIVE) if parent else DEFAULT_OBJECTIVE


def best_run(experiment: str, metric: str | None = None, tracking_uri: str | None = None) -> Run:
    """The finished trial with the highest `metric` (default: the sweep's recorded objective; NaNs are ignored)."""
    client = reading_client(tracking_uri)
    experiment_id = find_experiment_id(client, experiment)
    metric = metric or sweep_objective(experiment, tracking_uri)
    trials = search_all_runs(client, experiment_id, f"tags.`{KIND_TAG}` = 'trial'")
    finished = [run for run in trials if run.info.status == "FINISHED"]
    scored = [run for run in finished if not math.isnan(run.data.metrics.get(metric, math.nan))]
    if not scored:
        statuses = dict(Counter(run.info.status for run in trials))
        metrics = sorted({key for run in finished for key in run.data.metrics})
        raise EmodistillError(f"experiment {experiment!r}: no finished trial has metric {metric!r} "
                              f"(trials by status: {statuses}; metrics of finished trials: {metrics})")
    return max(scored, key=lambda run: run.data.metrics[metric])


def best_generator(experiment: str, metric: str | None = None, tracking_uri: str | None = None,
                   champion: bool = False, model_name: str | None = None,
                   cache_dir: str | Path | None = None) -> TrainedGenerator:
    """The best trial's generator by `metric` (default: the sweep's objective), or with champion=True the
    registry's champion (`model_name`: the experiment's)."""
    if champion:
        return load_champion(model_name or experiment, tracking_uri, cache_dir)
    run = best_run(experiment, metric, tracking_uri)
    return load(download_generator(run.info.run_id, tracking_uri, cache_dir))


def best_distilled_set(experiment: str, ppc: int, metric: str | None = None,
                       tracking_uri: str | None = None) -> pa.Table:
    """The distilled set of `ppc` per class that the best trial by `metric` (default: the sweep's objective) logged,
    its SHA-256 checked, as a feature table (read into memory)."""
    import tempfile

    from emodistill.features.store import read_table
    from emodistill.tracking.runs import download_distilled_set

    run = best_run(experiment, metric, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="emodistill-distilled-") as scratch:
        return read_table(download_distilled_set(run.info.run_id, ppc, scratch, tracking_uri)).combine_chunks()
