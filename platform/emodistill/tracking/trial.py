"""One trial's MLflow run and every convention of it (DESIGN "MLflow conventions"), behind one object.

While a trial trains, each evaluation goes to the learning curves `curve/<metric>` at its generator step
(`curve/dev_uar_ppc100`, `curve/uar_ppc100`, ...). When it ends, the evaluation of the checkpoint chosen on
dev is logged under the plain names (`dev_uar_ppc100`, `uar_ppc100`, `mcnemar_p_ppc100`) with
`selected_step`: so a run's headline metrics always describe the generator stored as its artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
from mlflow import MlflowClient

from emodistill.tracking.runs import (find_or_resume_trial_run, finish_run, log_distilled_sets, log_generator_artifact,
                                      log_metrics, log_params_flat)
from emodistill.tracking.store import tracking_client

log = logging.getLogger(__name__)

CURVE_PREFIX = "curve/"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.json"
CURVES_FIGURE = "figures/uar_per_step.png"


class TrialRun:
    """The MLflow run of one trial: created (or reopened after a restart), fed while training, closed at the end."""

    def __init__(self, client: MlflowClient, run_id: str, name: str):
        self.client, self.run_id, self.name = client, run_id, name

    @classmethod
    def open(cls, tracking_uri: str, experiment_id: str, parent_run_id: str, name: str,
             params: Mapping[str, object], tags: Mapping[str, str], run_id: str | None = None) -> TrialRun:
        """The trial's run under the sweep's parent: `run_id` (from a checkpoint) or the child named `name` if it
        exists, else a new one."""
        client = tracking_client(tracking_uri)  # the trial's one client, for all it logs
        return cls(client, find_or_resume_trial_run(client, experiment_id, parent_run_id, name, params, tags,
                                                    run_id=run_id), name)

    def log_params(self, params: Mapping[str, object]) -> None:
        """More params (dotted keys)."""
        log_params_flat(self.client, self.run_id, params)

    def log_resumed(self, step: int) -> None:
        """Mark where a restarted trial picked up."""
        log_metrics(self.client, self.run_id, {"resumed_from_step": step}, step=step)

    def log_losses(self, logged: Mapping[int, Mapping[str, float]]) -> None:
        """The training losses, one point per logged step."""
        for step, losses in logged.items():
            log_metrics(self.client, self.run_id, losses, step)

    def log_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """One evaluation of the generator at `step`, on the learning curves."""
        log_metrics(self.client, self.run_id, {CURVE_PREFIX + k: v for k, v in metrics.items()}, step)

    def log_selected(self, step: int, metrics: Mapping[str, float]) -> None:
        """The headline metrics: those of the checkpoint chosen on dev (kept as the run's generator)."""
        log_metrics(self.client, self.run_id, {**metrics, "selected_step": step}, step)

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """(step, value) of a learning curve, from the store (so a restarted trial's earlier points count too)."""
        history = self.client.get_metric_history(self.run_id, CURVE_PREFIX + metric)
        return sorted((m.step, m.value) for m in history)

    def log_outcome(self, generator_dir: Path, results: dict, predictions: dict, curves_figure,
                    sets_dir: Path | None = None) -> None:
        """The artifacts of a finished trial: generator/, its distilled sets (distilled/ppc{N}.arrow, from
        `sets_dir`), results.json, predictions.json and its learning curves."""
        log_generator_artifact(self.client, self.run_id, generator_dir)
        if sets_dir is not None:
            log_distilled_sets(self.client, self.run_id, sets_dir)
        self.client.log_dict(self.run_id, results, RESULTS_FILE)
        self.client.log_dict(self.run_id, predictions, PREDICTIONS_FILE)
        self.client.log_figure(self.run_id, curves_figure, CURVES_FIGURE)
        plt.close(curves_figure)

    def finish(self) -> None:
        """End the run as FINISHED."""
        finish_run(self.client, self.run_id, status="FINISHED")

    def fail(self, reason: str) -> None:
        """End the run as FAILED with its reason (tag and artifact)."""
        finish_run(self.client, self.run_id, status="FAILED", reason=reason)
