"""Sweeps of distillation runs on Ray Tune, tracked in MLflow."""

from emodistill.sweep.runner import SweepResult, resume_sweep, run_sweep
from emodistill.sweep.space import SearchSpace, load_space

__all__ = ["SearchSpace", "SweepResult", "load_space", "resume_sweep", "run_sweep"]
