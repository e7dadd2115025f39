"""MLflow tracking of sweeps: runs and their params/metrics/artifacts, the registry, the best generator, the server.

Names are imported on first use: `emodistill ui` supervises its server from this package, and loading the
generator code (torch) for it would triple that process's memory.
"""

from importlib import import_module

_HOMES = {
    "best_generator": "best", "best_run": "best",
    "load_champion": "registry", "register_champion": "registry",
    "find_or_resume_trial_run": "runs", "finish_run": "runs", "log_generator_artifact": "runs",
    "log_generator_model": "runs", "log_metrics": "runs", "log_params_flat": "runs", "start_parent_run": "runs",
    "start_trial_run": "runs",
    "MlflowServer": "server", "start_server": "server",
    "get_or_create_experiment": "store", "resolve_tracking_uri": "store", "tracking_client": "store",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """The public name `name`, imported from its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
