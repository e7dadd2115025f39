"""The sweep driver: share the inputs once, run the trials on Ray Tune, then rank, compare and register.

A sweep is one MLflow experiment (named after the sweep) with one parent run, one child run per
trial and one `baseline` run for the real-data reference (one per fold: each trial runs on one fold of
the space's `folds`, and is compared with its fold's reference). Its Tune experiment directory (a local
folder or an object-storage URI, see emodistill.storage) holds `sweep.json`, which
`resume_sweep(DIR_OR_URI)` reads to continue the same sweep into the same runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
from mlflow import MlflowClient
from mlflow.entities import Run
from pydantic import with_config
from ray import tune

from emodistill import storage
from emodistill.distill.config import DistillConfig
from emodistill.distill.pool import train_pool
from emodistill.downstream import DownstreamConfig
from emodistill.evaluate.baselines import evaluate_baselines
from emodistill.evaluate.protocol import ReferenceResult, train_reference
from emodistill.features.dataset import FeatureSet
from emodistill.features.store import fold_fingerprint, fold_sessions, load_folds, read_index
from emodistill.strict import WRITTEN_FILE
from emodistill.sweep.cluster import check_tracking_uri, connected
from emodistill.sweep.progress import RoundReporter, legacy_tune_output
from emodistill.sweep.report import (BASELINE_VARIANT, Predictions, SweepReport, best_trial, log_report,
                                     sweep_report)
from emodistill.sweep.shared import share_inputs
from emodistill.sweep.space import GridSearch, SearchSpace, load_space, trial_config
from emodistill.sweep.state import check_private, record_state, verify_state
from emodistill.sweep.trainable import TrialContext, distill_trial
from emodistill.sweep.tuning import evaluation_rounds, param_space, tune_config
from emodistill.tracking.champion import fold_of
from emodistill.tracking.naming import FOLD_PARAM, SEPARATOR
from emodistill.tracking.registry import register_champion
from emodistill.tracking.runs import (FAILURE_TAG, KIND_TAG, VARIANT_TAG, download_generator, finish_run,
                                      finished_reference, log_generator_model, log_metrics, log_reference,
                                      start_parent_run, sweep_runs)
from emodistill.tracking.store import (check_server, check_writable_store, get_or_create_experiment,
                                       tracking_client)

log = logging.getLogger(__name__)

STATE_FILE = "sweep.json"
RESULT_FILE = "sweep_result.json"
REFERENCE_RUN = "reference"
BASELINE_TAG = "mcnemar.baseline"


@with_config(WRITTEN_FILE)  # read back strictly by resume_sweep
@dataclass(frozen=True)
class SweepState:
    """What a resumed sweep must reuse: where it logs, which parent run, which inputs and space."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    features: str  # a folder on the machine that runs the driver (only the driver reads it)
    space: dict
    pool_cache_dir: str  # a folder or a storage URI


@dataclass
class SweepResult:
    """Outcome of a sweep: where it logged, each trial's run and status, the best run and its registration."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    experiment_path: str  # the Tune experiment directory or URI; pass it to `emodistill sweep --resume`
    objective: str
    trials: dict[str, dict] = field(default_factory=dict)  # run name -> run_id, status, value, reason
    best_run_id: str | None = None
    best_value: float | None = None
    champion_version: str | None = None
    interrupted: bool = False  # stopped by Ctrl+C before every trial ended: resume it, nothing was finalised


def run_sweep(space: str | Path | SearchSpace, features: str | Path, *, name: str | None = None,
              tracking_uri: str | None = None, storage_path: str | Path | None = None,
              pool_cache_dir: str | Path | None = None, address: str | None = None,
              verbose: bool = False) -> SweepResult:
    """Run a new sweep of `space` on the feature directory `features`, logging to MLflow; `storage_path` (Tune's
    checkpoints and the sweep's state, default ./sweeps) and `pool_cache_dir` (default under it) are folders or
    storage URIs such as s3://bucket/sweeps. It prints a line per evaluation round, or with `verbose` Tune's status
    tables and results (a resumed sweep keeps the choice)."""
    space = space if isinstance(space, SearchSpace) else load_space(space)
    name = name or space.name
    if not verbose:  # Optuna announces each study it creates, at INFO on a handler of its own
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = trial_config(space, dict(space.base.overrides))
    index = read_index(features)
    meta = index["meta"]
    space.check_trials(meta["dim"], len(meta["labels"]))  # a model that cannot be built fails before Ray starts
    space.check_folds(fold_sessions(index), str(features))  # so does a fold the features do not have
    # What the sweep reaches over the network answers, its checkpoints and runs can be written, and a trial fits a
    # node, before Ray starts.
    uri = check_writable_store(tracking_uri)
    check_server(uri)
    storage_root = storage.resolve(storage_path or "sweeps")
    storage.check_reachable(storage_root)
    storage.check_writable(storage_root)
    with connected(address, space.resources.as_tune()):
        check_tracking_uri(uri)
        features = Path(features).resolve()
        fingerprint = index["fingerprint"]  # the directory's; each trial's fold is its param
        parent = start_parent_run(name, name, _space_params(space), {"emodistill.space": space.name}, uri,
                                  features=fingerprint)
        state = SweepState(name=name, tracking_uri=uri, experiment_id=get_or_create_experiment(name, uri),
                           parent_run_id=parent, features=str(features), space=space.model_dump(mode="json"),
                           pool_cache_dir=storage.resolve(pool_cache_dir or storage.join(storage_root, "pool-cache")))
        run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        experiment_path = storage.join(storage_root, run_name)
        storage.write_text(storage.join(experiment_path, STATE_FILE), json.dumps(asdict(state), indent=2))
        trainable = _trainable(state, space, base)
        tuner = tune.Tuner(trainable, param_space=param_space(space), tune_config=tune_config(space, _rounds(base)),
                           run_config=tune.RunConfig(
                               name=run_name, **storage.for_tune(storage_root),
                               failure_config=tune.FailureConfig(max_failures=space.max_failures),
                               checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=2 if verbose else 0,
                               callbacks=[] if verbose else [RoundReporter(space, _rounds(base))]))
        record_state(tracking_client(uri), parent, experiment_path)  # tuner.pkl exists from here on
        log.info("sweep %s: %s (resume with `emodistill sweep --resume %s`)", name, experiment_path, experiment_path)
        with legacy_tune_output():
            results = tuner.fit()
        return _finish(state, space, results, experiment_path)


def resume_sweep(experiment_path: str | Path, *, address: str | None = None,
                 trust_unverified: bool = False) -> SweepResult:
    """Continue an interrupted sweep (its Tune experiment folder or URI) in the same MLflow runs: unfinished and
    errored trials resume from their checkpoints.

    A local directory must be writable by this user only, and the files Tune unpickles must match the digests
    the sweep recorded in its parent run (`trust_unverified` skips the latter, after a driver that died
    uncleanly). A resume that fails ends the parent run FAILED, with the reason.
    """
    experiment_path = storage.resolve(experiment_path)
    check_private(experiment_path)
    location = storage.join(experiment_path, STATE_FILE)
    state = storage.read_json(
        location, SweepState, missing=f"missing, so {experiment_path} is not a sweep directory; pass the Tune "
                                      "experiment path the sweep printed")
    check_server(state.tracking_uri)  # before Ray starts, and before a failed resume is recorded there
    client = tracking_client(state.tracking_uri)
    try:
        if not trust_unverified:
            verify_state(client, state.parent_run_id, experiment_path)
        space = SearchSpace.model_validate(state.space)
        with connected(address, space.resources.as_tune()):
            check_tracking_uri(state.tracking_uri)
            client.update_run(state.parent_run_id, status="RUNNING")
            trainable = _trainable(state, space, trial_config(space, space.base.overrides))
            # Errored trials (crashed past max_failures) continue from their last checkpoint, like unfinished ones.
            where = storage.for_tune(experiment_path)
            tuner = tune.Tuner.restore(where["storage_path"], trainable=trainable, resume_unfinished=True,
                                       resume_errored=True, storage_filesystem=where.get("storage_filesystem"))
            with legacy_tune_output():  # the output the sweep started with: its run config is restored too
                results = tuner.fit()
            return _finish(state, space, results, experiment_path)
    except Exception as exc:
        finish_run(client, state.parent_run_id, status="FAILED", reason=f"resume failed: {exc}")
        raise


def _rounds(base: DistillConfig) -> int:
    """Evaluation rounds of a full-length trial (ASHA's time unit)."""
    return evaluation_rounds(base.train.steps, base.train.eval_every)


def _space_params(space: SearchSpace) -> dict:
    """The parent run's params: the space's settings, flattened with dots."""
    flat = {}

    def walk(value, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = json.dumps(value) if isinstance(value, (list, dict)) else value

    walk(space.model_dump(mode="json", exclude={"description": True, "base": {"settings"}}), "")
    return flat


def _trainable(state: SweepState, space: SearchSpace, base: DistillConfig):
    """The trial function with the shared inputs (put once; a pool and a reference per fold) and its resources
    attached."""
    index = read_index(state.features)
    folds = space.check_folds(fold_sessions(index), state.features)
    pools, references, reference_run_ids = {}, {}, {}
    for fold, splits in load_folds(state.features, folds, base.data).items():
        if _uses_pool(space, base):
            # Keyed by the fold's (and data protocol's) fingerprint: a pool cache is never shared across folds.
            pools[fold] = train_pool(splits["train"], splits["dev"], base.pool, state.pool_cache_dir,
                                     fingerprint=fold_fingerprint(index["fingerprint"], fold, base.data))
        references[fold], reference_run_ids[fold] = _reference(state, space, splits, fold, len(folds) > 1,
                                                                index["fingerprint"], base.model.arch)
    shared = share_inputs(state.features, folds, pools, references, reference_run_ids, base.data)
    context = TrialContext(space=space, tracking_uri=state.tracking_uri, experiment_id=state.experiment_id,
                           parent_run_id=state.parent_run_id)
    return tune.with_resources(tune.with_parameters(distill_trial, shared=shared, context=context),
                               space.resources.as_tune())


def _uses_pool(space: SearchSpace, base: DistillConfig) -> bool:
    """True when some trial may weigh L_SML above zero (then the pool is trained once, or read from cache)."""
    if base.loss.lambda_sml > 0:
        return True
    search = space.search
    if isinstance(search, GridSearch):
        values = list(search.grid.get("loss.lambda_sml", [])) + [
            v.get("loss.lambda_sml", 0) for v in search.variants.values()]
        return any(float(v) > 0 for v in values)
    return "loss.lambda_sml" in search.params


def _reference(state: SweepState, space: SearchSpace, splits: dict[str, FeatureSet], fold: int | None,
               several: bool, features: str, arch: str) -> tuple[ReferenceResult, str]:
    """The real-data downstream every trial of `fold` is compared with, logged once as a `baseline` run of the
    sweep (named after its fold when the sweep runs `several`; tagged with the features' fingerprint) with the
    baselines at the budgets of `arch` (the base config's architecture)."""
    client = tracking_client(state.tracking_uri)
    params = {} if fold is None else {FOLD_PARAM: fold}
    evaluation = space.evaluation
    existing = finished_reference(client, state.experiment_id, state.parent_run_id, params)
    if existing is not None:  # a resumed sweep reuses its reference
        run_id, record = existing
        reference = ReferenceResult.from_dict(record)
        if evaluation.select.method != "iid":  # distilled sets are chosen in its model's embedding: train it again
            reference.model = train_reference(splits, DownstreamConfig(**evaluation.downstream), evaluation.seed).model
        return reference, run_id
    result = train_reference(splits, DownstreamConfig(**evaluation.downstream), evaluation.seed,
                             decoders=evaluation.decoders)
    # The field's baselines at the sweep's budgets, logged beside the reference as `{source}.uar_ppc{N}`: the
    # selection ladder (random, herding, k-means, k-center) and the Gaussian, with the trials' protocol.
    ladder = evaluate_baselines(splits, evaluation.eval_config(arch), result, progress=False)
    metrics = {**result.metrics, **{f"{source.name}.{key}": value for source in ladder
                                    for key, value in source.metrics.items()}}
    name = f"{REFERENCE_RUN}{SEPARATOR}fold {fold}" if several else REFERENCE_RUN
    run_id = log_reference(client, state.experiment_id, state.parent_run_id, name, features, params, metrics,
                           result.to_dict())
    return result, run_id


def _finish(state: SweepState, space: SearchSpace, results: tune.ResultGrid, experiment_path: str) -> SweepResult:
    """Close every trial's run, compare variants with the Baseline, chart the trials, register the best."""
    client = tracking_client(state.tracking_uri)
    record_state(client, state.parent_run_id, experiment_path)  # what a later resume may unpickle
    metric = space.objective.metric
    outcome = SweepResult(name=state.name, tracking_uri=state.tracking_uri, experiment_id=state.experiment_id,
                          parent_run_id=state.parent_run_id, experiment_path=experiment_path, objective=metric)
    # Tune marks a trial's last result done when it returned or the scheduler stopped it; after Ctrl+C
    # some trials have neither that nor an error, and the sweep is left as it is, to be resumed.
    if any(result.error is None and not result.metrics.get("done") for result in results):
        log.warning("sweep %s interrupted; continue it with `emodistill sweep --resume %s`",
                    state.name, experiment_path)
        outcome.interrupted = True
        return outcome
    runs = {run.data.tags.get("ray.trial_id"): run
            for run in sweep_runs(client, state.experiment_id, state.parent_run_id, "trial")}
    for result in results:
        run = runs.get(result.metrics.get("trial_id") if result.metrics else None)
        if run is not None and run.info.status == "RUNNING":
            _close_unfinished(client, run, result)
    # Once more, for the runs just closed: one paged query rather than a request per trial.
    children = sweep_runs(client, state.experiment_id, state.parent_run_id)
    predictions = Predictions(client)
    report = sweep_report(client, client.get_run(state.parent_run_id), children, state.name, predictions)
    _compare_with_baselines(client, report, predictions)
    for run in sorted(children, key=lambda r: r.info.run_name):
        if run.data.tags.get(KIND_TAG) == "trial":
            outcome.trials[run.info.run_name] = {
                "run_id": run.info.run_id, "status": run.info.status, metric: run.data.metrics.get(metric),
                "variant": run.data.tags.get(VARIANT_TAG), "fold": fold_of(run),
                "reason": run.data.tags.get(FAILURE_TAG)}
    best = best_trial(report)
    if best is not None:
        outcome.best_run_id, outcome.best_value = best.info.run_id, best.data.metrics[metric]
        outcome.champion_version = _register_best(state, outcome.best_run_id, metric)
        report.champion = f"{state.name} version {outcome.champion_version}"
        client.set_tag(state.parent_run_id, "best_run_id", outcome.best_run_id)
        log_metrics(client, state.parent_run_id, {f"best_{metric}": outcome.best_value}, step=0)
    log_report(client, report)
    client.log_dict(state.parent_run_id, asdict(outcome), RESULT_FILE)
    storage.write_text(storage.join(experiment_path, RESULT_FILE), json.dumps(asdict(outcome), indent=2))
    finish_run(client, state.parent_run_id, status="FINISHED" if best else "FAILED",
               reason=None if best else "no trial finished with the objective metric")
    return outcome


def _close_unfinished(client: MlflowClient, run: Run, result: tune.Result) -> None:
    """End the run of a trial Tune gave up on (crashed past max_failures) or stopped early (ASHA)."""
    if result.error is not None:
        error = str(result.error).strip().splitlines()[-1]
        reason = f"trial failed after {result.metrics.get('step', 0)} steps: {error}"
        finish_run(client, run.info.run_id, status="FAILED", reason=reason)
    else:
        reason = f"stopped early by the scheduler at step {result.metrics.get('step')}"
        finish_run(client, run.info.run_id, status="KILLED", reason=reason)


def _compare_with_baselines(client: MlflowClient, report: SweepReport, predictions: Predictions) -> None:
    """McNemar of each finished trial against the Baseline of its setting (that row's best trial on the same fold:
    the same test utterances), per budget."""
    for row in report.rows:
        baseline = report.sibling(row, BASELINE_VARIANT)
        if baseline is None or baseline is row:
            continue
        for run in row.runs:
            other = baseline.best_by_fold.get(fold_of(run))
            if other is None:  # the Baseline has no finished trial on this fold
                continue
            pvalues = predictions.pvalues(run.info.run_id, other.info.run_id)
            log_metrics(client, run.info.run_id, {f"mcnemar_p_{key}_vs_baseline": p for key, p in pvalues.items()},
                        step=0)
            client.set_tag(run.info.run_id, BASELINE_TAG, other.info.run_id)


def _register_best(state: SweepState, run_id: str, objective: str) -> int:
    """Log the best generator as a pyfunc model on its run and register it under the sweep's name as `champion`."""
    generator_dir = download_generator(run_id, state.tracking_uri)
    model_uri = log_generator_model(run_id, generator_dir, state.tracking_uri)
    return register_champion(run_id, state.name, state.tracking_uri, model_uri, objective=objective)
