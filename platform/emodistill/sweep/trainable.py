"""The Tune trainable: one distillation run, evaluated every `train.eval_every` steps, checkpointed through Tune.

Every evaluation round is one `tune.report` carrying `uar_ppc{N}` per budget, the latest losses and
a Tune checkpoint (the trainer's checkpoint directory plus the trial's MLflow run id). A trial that
Tune restarts after a crash copies that checkpoint back into its working directory, resumes the
distillation from the same step and keeps logging into the same MLflow run.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import ray
from mlflow import MlflowClient
from ray import tune

from emodistill.distill.config import DistillConfig, load_config
from emodistill.distill.trainer import Hooks, distill
from emodistill.errors import ConfigError, TrainingDiverged
from emodistill.evaluate.protocol import EvalConfig, ReferenceResult, evaluate_generator
from emodistill.features.dataset import FeatureSet
from emodistill.generator import TrainedGenerator
from emodistill.sweep.cluster import node_identity
from emodistill.sweep.figures import uar_curves
from emodistill.sweep.shared import SharedInputs, open_shared_pool, open_shared_splits
from emodistill.sweep.space import VARIANT_KEY, SearchSpace
from emodistill.sweep.tuning import trial_overrides
from emodistill.tracking.runs import find_or_resume_trial_run, finish_run, log_generator_artifact, log_metrics
from emodistill.tracking.store import tracking_client

log = logging.getLogger(__name__)

STATE_FILE = "trial.json"  # beside the trainer's checkpoint in a Tune checkpoint: run id and step
CHECKPOINTS = "checkpoints"  # the trainer's checkpoint folder inside its out_dir
PREDICTIONS_FILE = "predictions.json"
RESULTS_FILE = "results.json"
REFERENCE_TAG = "mcnemar.reference"  # the run id of the real-data reference the p-values compare with


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its config and the shared inputs (small, passed by value)."""

    space: SearchSpace
    tracking_uri: str
    experiment_id: str
    parent_run_id: str


def distill_trial(config: dict, *, shared: SharedInputs, context: TrialContext) -> None:
    """Tune function trainable: distil with this trial's overrides, report UAR per budget, checkpoint via Tune."""
    trial = tune.get_context()
    space = context.space
    overrides = trial_overrides(space, config)
    distill_config = trial_config(space, overrides)
    splits = open_shared_splits(shared)
    out_dir = Path(trial.get_trial_dir()) / "distill"
    restored = _restore(out_dir)

    client = tracking_client(context.tracking_uri)
    tags = {**node_identity(), "ray.trial_id": trial.get_trial_id(), "ray.trial_name": trial.get_trial_name()}
    if VARIANT_KEY in config:
        tags[VARIANT_KEY] = config[VARIANT_KEY]
    if shared.reference_run_id is not None:
        tags[REFERENCE_TAG] = shared.reference_run_id
    run_id = find_or_resume_trial_run(context.tracking_uri, context.experiment_id, context.parent_run_id,
                                      trial.get_trial_name(), distill_config.flatten(), tags,
                                      run_id=restored.get("run_id"))
    if restored:
        log_metrics(client, run_id, {"resumed_from_step": restored["step"]}, step=restored["step"])

    reference = ray.get(shared.reference) if shared.reference is not None else None
    reporter = TrialReporter(client, run_id, splits, space.evaluation.eval_config(distill_config.model.arch),
                             reference)
    try:
        generator_dir = distill(splits["train"], splits["dev"], distill_config, out_dir,
                                pool=open_shared_pool(shared) if distill_config.loss.lambda_sml > 0 else None,
                                resume=bool(restored),
                                hooks=Hooks(on_log=reporter.on_log, on_eval=reporter.on_eval,
                                            on_checkpoint=reporter.on_checkpoint), progress=False)
    except TrainingDiverged as exc:
        finish_run(client, run_id, status="FAILED", reason=f"training diverged: {exc}")
        raise
    reporter.log_results(generator_dir)
    finish_run(client, run_id, status="FINISHED")


def trial_config(space: SearchSpace, overrides: dict) -> DistillConfig:
    """The trial's DistillConfig, checkpointing at every evaluation (each Tune report carries a checkpoint)."""
    config = load_config(space.base.preset, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    train = config.train
    if not 0 < train.eval_every <= train.steps:
        raise ConfigError(f"search space {space.name}: train.eval_every must be in 1..train.steps ({train.steps}) "
                          f"so every trial reports its metrics, got {train.eval_every}")
    return config.model_copy(update={"train": train.model_copy(update={"checkpoint_every": train.eval_every})})


def _restore(out_dir: Path) -> dict:
    """Copy the trial's last Tune checkpoint into out_dir/checkpoints; return its state ({} on a fresh start)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as directory:
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
        shutil.copytree(Path(directory) / CHECKPOINTS, out_dir / CHECKPOINTS)
    log.info("trial resumes from its checkpoint at step %d (run %s)", state["step"], state["run_id"])
    return state


class TrialReporter:
    """The trainer's hooks: losses to MLflow, evaluations to MLflow and Tune, checkpoints to Tune."""

    def __init__(self, client: MlflowClient, run_id: str, splits: dict[str, FeatureSet], eval_config: EvalConfig,
                 reference: ReferenceResult | None):
        self.client, self.run_id = client, run_id
        self.splits, self.eval_config, self.reference = splits, eval_config, reference
        self.losses: dict[str, float] = {}
        self.evaluated: dict[str, float] = {}  # the latest evaluation, reported with each checkpoint
        self.predictions: dict[str, list[int]] = {}  # of the latest evaluation, per condition

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """Per-step losses go to MLflow; the latest also ride along with the next Tune report."""
        self.losses = {k: float(v) for k, v in metrics.items()}
        log_metrics(self.client, self.run_id, self.losses, step)

    def on_eval(self, step: int, generator: TrainedGenerator) -> dict[str, float]:
        """UAR (and McNemar against the real-data reference) for every budget, at this step."""
        result = evaluate_generator(generator, self.splits, self.eval_config, self.reference,
                                    name=f"step {step}", progress=False)
        metrics = {k: float(v) for k, v in result.metrics.items()}
        self.predictions = {key: pred.tolist() for key, pred in result.predictions.items()}
        log_metrics(self.client, self.run_id, metrics, step)
        self.evaluated = metrics
        return metrics  # recorded in the generator's config.json

    def on_checkpoint(self, step: int, path: str | Path) -> None:
        """Report the latest evaluation to Tune with the trainer's checkpoint file and the MLflow run id.

        The trainer evaluates before it checkpoints at the same step, and checkpoints at every evaluation.
        """
        metrics = {**self.losses, **self.evaluated, "step": step}
        with tempfile.TemporaryDirectory(prefix="emodistill-ckpt-") as staging:
            (Path(staging) / CHECKPOINTS).mkdir()
            shutil.copy2(path, Path(staging) / CHECKPOINTS / Path(path).name)
            state = {"run_id": self.run_id, "step": step}
            (Path(staging) / STATE_FILE).write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(staging))

    def log_results(self, generator_dir: Path) -> None:
        """Artifacts of a finished trial: generator/, results.json, predictions.json and the UAR figure."""
        log_generator_artifact(self.client, self.run_id, generator_dir)
        # From the store, not from memory: a resumed trial's evaluations before its restart are there too.
        curves = {n: [(m.step, m.value) for m in self.client.get_metric_history(self.run_id, f"uar_ppc{n}")]
                  for n in self.eval_config.budgets}
        self.client.log_dict(self.run_id, {"metrics": self.evaluated, "budgets": self.eval_config.budgets,
                                           "uar_per_step": curves}, RESULTS_FILE)
        self.client.log_dict(self.run_id, {"y_true": self.splits["test"].labels.tolist(), **self.predictions},
                             PREDICTIONS_FILE)
        figure = uar_curves(curves)
        self.client.log_figure(self.run_id, figure, "figures/uar_per_step.png")
        plt.close(figure)
