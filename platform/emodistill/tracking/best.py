"""Find a sweep's best trial and load its generator or one of its distilled sets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
from mlflow import MlflowClient
from mlflow.entities import Run

from emodistill.errors import ConfigError, EmodistillError
from emodistill.generator import TrainedGenerator, load
from emodistill.tracking.champion import champion_trial
from emodistill.tracking.registry import load_champion
from emodistill.tracking.runs import KIND_TAG, download_generator, sweep_runs
from emodistill.tracking.store import failing_fast, reading_client, search_all_runs


DEFAULT_OBJECTIVE = "dev_uar_ppc100"
DEV_PREFIX = "dev_"  # the metrics that may choose: scores on the real dev split
OBJECTIVE_PARAM = "objective.metric"  # a sweep's parent run records its objective under this param


def find_experiment_id(client: MlflowClient, experiment: str) -> str:
    """The id of the experiment named `experiment`; an error naming those that exist if there is none."""
    if not isinstance(experiment, str):
        raise ConfigError(f"experiment: expected an experiment's name, got {type(experiment).__name__}")
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
    with failing_fast(tracking_uri):
        client = reading_client(tracking_uri)
        return recorded_objective(latest_sweep(client, find_experiment_id(client, experiment)))


def recorded_objective(parent: Run | None) -> str:
    """The objective a sweep's parent run recorded, else dev_uar_ppc100."""
    return parent.data.params.get(OBJECTIVE_PARAM, DEFAULT_OBJECTIVE) if parent else DEFAULT_OBJECTIVE


def check_choice_metric(metric: str) -> None:
    """Refuse a metric that is not a dev score: test scores report a choice, they never make one."""
    if not isinstance(metric, str):
        raise ConfigError(f"metric: expected a metric's name ({DEV_PREFIX}*), got {type(metric).__name__}")
    if not metric.startswith(DEV_PREFIX):
        twin = f"; its dev twin is {DEV_PREFIX}{metric}" if metric.startswith("uar_ppc") else ""
        raise ConfigError(f"metric {metric!r}: only dev scores ({DEV_PREFIX}*) choose a trial, never the test "
                          f"split's{twin}")


def best_run(experiment: str, metric: str | None = None, tracking_uri: str | None = None) -> Run:
    """The champion of the experiment's latest sweep by `metric` (default: its recorded objective; a dev score), by
    the rule the sweep registers its champion with (emodistill.tracking.champion; NaNs are ignored)."""
    if metric is not None:
        check_choice_metric(metric)
    with failing_fast(tracking_uri):
        client = reading_client(tracking_uri)
        experiment_id = find_experiment_id(client, experiment)
        parent = latest_sweep(client, experiment_id)
        metric = metric or recorded_objective(parent)
        trials = (sweep_runs(client, experiment_id, parent.info.run_id, "trial") if parent
                  else search_all_runs(client, experiment_id, f"tags.`{KIND_TAG}` = 'trial'"))
    best = champion_trial(trials, metric)
    if best is None:
        statuses = dict(Counter(run.info.status for run in trials))
        metrics = sorted({key for run in trials if run.info.status == "FINISHED" for key in run.data.metrics})
        raise EmodistillError(f"experiment {experiment!r}: no finished trial has metric {metric!r} "
                              f"(trials by status: {statuses}; metrics of finished trials: {metrics})")
    return best


def best_generator(experiment: str, metric: str | None = None, tracking_uri: str | None = None,
                   champion: bool = False, model_name: str | None = None,
                   cache_dir: str | Path | None = None) -> TrainedGenerator:
    """The best trial's generator by `metric` (see best_run), or with champion=True the registry's champion
    (`model_name`: the experiment's); a tracking server that does not answer is an error within seconds."""
    with failing_fast(tracking_uri):
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

    if isinstance(ppc, bool) or not isinstance(ppc, int) or ppc < 1:
        raise ConfigError(f"ppc: expected a budget of utterances per class (a positive integer), got {ppc!r}")
    with tempfile.TemporaryDirectory(prefix="emodistill-distilled-") as scratch, failing_fast(tracking_uri):
        run = best_run(experiment, metric, tracking_uri)
        return read_table(download_distilled_set(run.info.run_id, ppc, scratch, tracking_uri)).combine_chunks()
