"""The sweep driver: share the inputs once, run the trials on Ray Tune, then rank, compare and register.

A sweep is one MLflow experiment (named after the sweep) with one parent run, one child run per
trial and one `baseline` run for the real-data reference. Its Tune experiment directory holds
`sweep.json`, which `run_sweep(resume=DIR)` reads to continue the same sweep into the same runs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray import tune

from emodistill.distill.pool import train_pool
from emodistill.errors import ConfigError, EmodistillError
from emodistill.evaluate import mcnemar
from emodistill.evaluate.protocol import EvalConfig, train_reference
from emodistill.features.store import load_splits
from emodistill.sweep.cluster import check_tracking_uri, connect
from emodistill.sweep.figures import objective_chart
from emodistill.sweep.shared import ReferencePredictions, SharedInputs, share_inputs
from emodistill.sweep.space import VARIANT_KEY, GridSearch, SearchSpace, load_space
from emodistill.sweep.trainable import PREDICTIONS_FILE, TrialContext, distill_trial, trial_config
from emodistill.sweep.tuning import evaluation_rounds, param_space, trial_overrides, tune_config
from emodistill.tracking.runs import (FEATURES_TAG, KIND_TAG, download_generator, finish_run, log_generator_model,
                                      log_metrics, start_parent_run)
from emodistill.tracking.registry import register_champion
from emodistill.tracking.store import get_or_create_experiment, resolve_tracking_uri, tracking_client
from emodistill.tracking.best import trial_runs

log = logging.getLogger(__name__)

STATE_FILE = "sweep.json"
REFERENCE_TAG = "mcnemar.reference"
BASELINE_TAG = "mcnemar.baseline"
BASELINE_VARIANT = "baseline"


@dataclass
class SweepState:
    """What a resumed sweep must reuse: where it logs, which parent run, which inputs and space."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    features: str
    space: dict
    pool_cache_dir: str


@dataclass
class SweepResult:
    """Outcome of a sweep: where it logged, each trial's run and status, the best run and its registration."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    experiment_path: str  # the Tune experiment directory; pass it to --resume
    objective: str
    trials: dict[str, dict] = field(default_factory=dict)  # run name -> run_id, status, objective value
    best_run_id: str | None = None
    best_value: float | None = None
    champion_version: str | None = None


def run_sweep(space: str | Path | SearchSpace, features: str | Path, *, name: str | None = None,
              tracking_uri: str | None = None, storage_path: str | Path | None = None,
              pool_cache_dir: str | Path | None = None, address: str | None = None) -> SweepResult:
    """Run a new sweep of `space` on the feature directory `features`, logging to MLflow."""
    space = space if isinstance(space, SearchSpace) else load_space(space)
    name = name or space.name
    started_ray = connect(address)
    try:
        uri = resolve_tracking_uri(tracking_uri)
        check_tracking_uri(uri)
        features = Path(features).resolve()
        storage = Path(storage_path or "sweeps").resolve()
        pool_cache = Path(pool_cache_dir or storage / "pool-cache").resolve()
        experiment_id = get_or_create_experiment(name, uri)
        shared, fingerprint = _prepare_inputs(space, features, pool_cache)
        parent = start_parent_run(name, name, _space_params(space), {"emodistill.space": space.name},
                                  uri, features=fingerprint)
        state = SweepState(name=name, tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent,
                           features=str(features), space=space.model_dump(mode="json"),
                           pool_cache_dir=str(pool_cache))
        reference = _log_reference(state, shared)
        shared = SharedInputs(**{**shared.__dict__, "reference": reference})
        tuner = tune.Tuner(_trainable(state, shared), param_space=param_space(space),
                           tune_config=tune_config(space, _rounds(space)),
                           run_config=_run_config(space, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage))
        experiment_path = Path(tuner._local_tuner.get_experiment_checkpoint_dir())
        _write_state(experiment_path, state)
        return _finish(state, space, tuner.fit(), experiment_path)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def resume_sweep(experiment_path: str | Path, *, address: str | None = None) -> SweepResult:
    """Continue an interrupted sweep: unfinished trials resume from their checkpoints, errored ones restart."""
    experiment_path = Path(experiment_path).resolve()
    state_file = experiment_path / STATE_FILE
    if not state_file.is_file():
        raise ConfigError(f"{experiment_path}: not a sweep directory (no {STATE_FILE}); pass the path the sweep printed")
    state = SweepState(**json.loads(state_file.read_text()))
    space = SearchSpace.model_validate(state.space)
    started_ray = connect(address)
    try:
        check_tracking_uri(state.tracking_uri)
        shared, _ = _prepare_inputs(space, Path(state.features), Path(state.pool_cache_dir))
        shared = SharedInputs(**{**shared.__dict__, "reference": _log_reference(state, shared)})
        tracking_client(state.tracking_uri).update_run(state.parent_run_id, status="RUNNING")
        tuner = tune.Tuner.restore(str(experiment_path), trainable=_trainable(state, shared),
                                   resume_unfinished=True, restart_errored=True)
        return _finish(state, space, tuner.fit(), experiment_path)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
