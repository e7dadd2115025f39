"""The Tune trainable: one distillation that owns its loop, as in Ray Tune's examples.

    repeat: train `train.eval_every` generator steps -> score the generator on the real dev and test splits
            -> keep it if it is the best on dev so far -> tune.report(metrics, checkpoint)
    then:   save the generator chosen on dev, log it and its scores to MLflow, report the chosen scores

A trial trains and scores on one fold's splits (its config's `fold`, else the sweep's only fold), viewed in the
shared whole-corpus table, and compares with that fold's pool and reference.
Only dev scores choose (the objective must be a `dev_uar_ppc<N>`, or `dev_uar_ppc<N>_<decoder>` for another
head); test scores are reported beside them, and the learning curves logged with the generator are the objective
head's. A trial that Tune restarts after a crash restores its checkpoint (the trainer's state, the MLflow run id,
the chosen checkpoint's test predictions), continues from the same step and keeps logging into the same run.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ray
from pydantic import BaseModel
from ray import tune

from emodistill.distill.checkpoint import load_checkpoint, save_checkpoint
from emodistill.distill.config import DistillConfig
from emodistill.distill.trainer import Distiller, fit_gaussian_generator
from emodistill.errors import TrainingDiverged
from emodistill.distilled import write_distilled_set
from emodistill.evaluate.protocol import (EvalConfig, EvalResult, ReferenceResult, balanced_budgets, objective_keys,
                                          evaluate_generator, split_decoder)
from emodistill.features.dataset import FeatureSet
from emodistill.files import read_json
from emodistill.generator import TrainedGenerator, load, save_generator, save_trained
from emodistill.strict import WRITTEN_FILE
from emodistill.sweep.cluster import node_identity
from emodistill.sweep.figures import learning_curves
from emodistill.sweep.names import trial_name, trial_tags
from emodistill.sweep.shared import SharedInputs, open_shared_pool, open_shared_splits
from emodistill.sweep.space import FOLD_KEY, SearchSpace, trial_config, trial_overrides
from emodistill.tracking.naming import FOLD_PARAM
from emodistill.tracking.store import bound_trial_requests
from emodistill.tracking.trial import TrialRun

log = logging.getLogger(__name__)

STATE_FILE = "trial.json"  # beside the trainer's checkpoint in a Tune checkpoint
MAX_SET_BYTES = 256 * 2**20  # a trial logs the distilled set of each budget up to this size
REFERENCE_TAG = "mcnemar.reference"  # the run id of the real-data reference the p-values compare with


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its config and the shared inputs (small, passed by value)."""

    space: SearchSpace
    tracking_uri: str
    experiment_id: str
    parent_run_id: str


class TrialState(BaseModel):
    """trial.json: the run a trial logs to, its step and the test predictions of the checkpoint chosen so far."""

    model_config = WRITTEN_FILE
    run_id: str
    step: int
    predictions: dict[str, list[int]]


@dataclass
class Restored:
    """What a restarted trial takes back from its last Tune checkpoint (empty on a fresh start)."""

    run_id: str | None = None
    trainer: dict | None = None  # the Distiller's state
    predictions: dict = field(default_factory=dict)  # test predictions of the checkpoint chosen so far


def distill_trial(config: dict, *, shared: SharedInputs, context: TrialContext) -> None:
    """Tune function trainable: distil with this trial's overrides, choosing the generator on dev."""
    bound_trial_requests()  # this worker's process: a tracking server that stays down fails the trial in minutes
    space = context.space
    distill_config = trial_config(space, trial_overrides(space, config))
    fold = config.get(FOLD_KEY, shared.folds[0])
    splits = open_shared_splits(shared, fold)
    reference = ray.get(shared.references[fold]) if fold in shared.references else None
    evaluation = space.evaluation.eval_config(distill_config.model.arch)
    objective = space.objective.metric
    restored = _restore()
    trial = tune.get_context()
    tags = {**node_identity(), **trial_tags(config, distill_config), "ray.trial_id": trial.get_trial_id()}
    if fold in shared.reference_run_ids:
        tags[REFERENCE_TAG] = shared.reference_run_ids[fold]
    params = {**distill_config.flatten(), **({FOLD_PARAM: fold} if fold is not None else {})}
    run = TrialRun.open(context.tracking_uri, context.experiment_id, context.parent_run_id,
                        trial_name(space, config, distill_config, trial.get_trial_id()), params, tags,
                        run_id=restored.run_id)

    def evaluate(generator) -> EvalResult:
        return evaluate_generator(generator, splits, evaluation, reference, progress=False)

    if distill_config.model.arch == "gaussian":  # fitted, not trained: one evaluation is the whole trial
        generator = fit_gaussian_generator(splits["train"], distill_config, shared.fold_fingerprint(fold))
        result = evaluate(generator)
        generator.config["metrics"].update(result.metrics)
        _finish(run, lambda folder: save_trained(generator, folder), 0, result.metrics, result.predictions_json(),
                splits["test"], lambda g, folder: _write_sets(g, splits["train"], evaluation, reference, folder),
                objective)
        tune.report({**result.metrics, "step": 0})
        return

    trainer = Distiller(splits["train"], distill_config, _pool(shared, distill_config, fold),
                        features=shared.fold_fingerprint(fold))
    predictions = restored.predictions
    if restored.trainer is not None:
        trainer.restore(restored.trainer, Path("Tune checkpoint"))
        run.log_resumed(trainer.step)
    steps, every = distill_config.train.steps, distill_config.train.eval_every
    try:
        while trainer.step < steps:
            logged = trainer.train_steps(min(every, steps - trainer.step))
            run.log_losses(logged)
            result = trainer.evaluate(evaluate)
            run.log_evaluation(trainer.step, result.metrics)
            if trainer.select(result.metrics, objective):
                predictions = result.predictions_json()
            losses = logged[max(logged)]
            with tempfile.TemporaryDirectory(prefix="emodistill-ckpt-") as staging:
                # tune.report copies the checkpoint into the sweep's storage before it returns.
                tune.report({**losses, **result.metrics, "step": trainer.step},
                            checkpoint=_checkpoint(Path(staging), trainer, run.run_id, predictions))
    except TrainingDiverged as exc:
        run.fail(f"training diverged: {exc}")
        raise
    module, chosen = trainer.selected()
    metrics = {**chosen, "steps": trainer.step}
    scores = {k: v for k, v in chosen.items() if k not in ("selected_step", "selected_by")}
    _finish(run, lambda folder: save_generator(module, folder, **trainer.artifact_fields(metrics)),
            chosen["selected_step"], scores, predictions, splits["test"],
            lambda generator, folder: _write_sets(generator, splits["train"], evaluation, reference, folder),
            objective)
    # The last report carries the chosen checkpoint's scores: what a searcher learns from this trial.
    tune.report({**scores, "step": trainer.step, "selected_step": chosen["selected_step"]})


def _pool(shared: SharedInputs, config: DistillConfig, fold: int | None) -> list:
    """The fold's shared L_SML pool when this trial weighs L_SML, else none."""
    return open_shared_pool(shared, fold) if config.loss.lambda_sml > 0 else []


def _checkpoint(staging: Path, trainer: Distiller, run_id: str, predictions: dict) -> tune.Checkpoint:
    """A Tune checkpoint in `staging` of the trainer's state, the MLflow run id and the chosen checkpoint's
    predictions."""
    save_checkpoint(staging, trainer.state(seconds=0.0))
    (staging / STATE_FILE).write_text(json.dumps({"run_id": run_id, "step": trainer.step,
                                                  "predictions": predictions}))
    return tune.Checkpoint.from_directory(staging)


def _restore() -> Restored:
    """The trial's last Tune checkpoint, if Tune restarted it from one."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return Restored()
    with checkpoint.as_directory() as directory:
        state = read_json(Path(directory) / STATE_FILE, TrialState, missing="missing from the trial's checkpoint")
        trainer = load_checkpoint(directory)
    log.info("trial resumes from its checkpoint at step %d (run %s)", state.step, state.run_id)
    return Restored(run_id=state.run_id, trainer=trainer, predictions=state.predictions)


def _write_sets(generator: TrainedGenerator, train: FeatureSet, evaluation: EvalConfig,
                reference: ReferenceResult | None, folder: Path) -> None:
    """The generator's distilled set of each balanced budget of `evaluation` (its `select`, seed 0) as
    folder/ppc{N}.arrow; a set over MAX_SET_BYTES is not written (logged instead)."""
    folder.mkdir(parents=True, exist_ok=True)
    embedding = None if reference is None else reference.model
    frames, dim = generator.config["model"]["frames"], generator.config["model"]["dim"]
    for n, _ in balanced_budgets(f"ppc{b}" for b in evaluation.budgets):
        size = n * len(generator.label_names) * frames * dim * 4
        if size > MAX_SET_BYTES:
            log.info("distilled set of %d per class not logged: %.0f MiB", n, size / 2**20)
            continue
        write_distilled_set(generator, train, n, evaluation.select, folder / f"ppc{n}.arrow", embedding)


def _finish(run: TrialRun, save: Callable[[Path], Path], step: int, scores: dict, predictions: dict,
            test: FeatureSet, sets: Callable[[TrainedGenerator, Path], None], objective: str) -> None:
    """Log the chosen generator (`save` writes it to a folder), its distilled sets (`sets` writes them), its scores
    and predictions, the learning curves of the head that scores `objective`; end the run FINISHED."""
    run.log_selected(step, scores)
    keys, decoder = objective_keys(scores, objective), split_decoder(objective)[1]
    curves = {n: {"dev": run.curve(f"dev_uar_{key}"), "test": run.curve(f"uar_{key}")} for n, key in keys.items()}
    results = {"metrics": scores, "selected_step": step, "budgets": list(keys), "curves": curves,
               "curves_decoder": decoder}
    # The worker keeps nothing: the generator and its sets go to MLflow from a scratch folder of this node.
    with tempfile.TemporaryDirectory(prefix="emodistill-generator-") as scratch:
        generator_dir = save(Path(scratch) / "generator")
        sets(load(generator_dir), Path(scratch) / "distilled")
        run.log_outcome(generator_dir, results, {"y_true": test.labels.tolist(), **predictions},
                        learning_curves(curves, step, run.name, decoder), Path(scratch) / "distilled")
    run.finish()
