"""MLflow tracking of sweeps: runs and their params/metrics/artifacts, the registry, the best generator, the server."""

from emodistill.tracking.best import best_generator, best_run
from emodistill.tracking.registry import load_champion, register_champion
from emodistill.tracking.runs import (
    find_or_resume_trial_run,
    finish_run,
    log_generator_artifact,
    log_generator_model,
    log_metrics,
    log_params_flat,
    start_parent_run,
    start_trial_run,
)
from emodistill.tracking.server import MlflowServer, start_server
from emodistill.tracking.store import get_or_create_experiment, resolve_tracking_uri, tracking_client

__all__ = [
    "MlflowServer",
    "best_generator",
    "best_run",
    "find_or_resume_trial_run",
    "finish_run",
    "get_or_create_experiment",
    "load_champion",
    "log_generator_artifact",
    "log_generator_model",
    "log_metrics",
    "log_params_flat",
    "register_champion",
    "resolve_tracking_uri",
    "start_parent_run",
    "start_server",
    "start_trial_run",
    "tracking_client",
]
