"""Runs of a sweep (DESIGN "MLflow conventions"): one parent per sweep, one child per trial, explicit clients."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from emodistill import __version__
from emodistill.errors import ConfigError, EmodistillError, IntegrityError
from emodistill.evaluate.results import ReferenceRecord
from emodistill.files import file_sha256, read_json
from emodistill.generator.artifact import CONFIG_FILE, WEIGHTS_FILE, read_config
from emodistill.runtime import cache_dir as runtime_cache_dir
from emodistill.tracking.store import (
    get_or_create_experiment,
    global_tracking_uri,
    reading_client,
    search_all_runs,
    tracking_client,
)

log = logging.getLogger(__name__)

KIND_TAG = "emodistill.kind"
FEATURES_TAG = "emodistill.features"
VARIANT_TAG = "variant"  # a trial's named variant of the search space (Baseline, +L_DIV, ...), as Tune names it
ARCH_TAG = "emodistill.arch"
FAILURE_TAG = "emodistill.failure"
GENERATOR_ARTIFACT = "generator"
DISTILLED_ARTIFACT = "distilled"  # a trial's distilled set of each budget it scored: distilled/ppc{N}.arrow
REFERENCE_FILE = "reference.json"  # a reference run's predictions on the test split, for McNemar
FAILURE_ARTIFACT = "failure.txt"
GENERATOR_FILES = (CONFIG_FILE, WEIGHTS_FILE)
# SHA-256 of each generator file (and of the pyfunc code), recorded as run tags when the run logs them:
# an artifact store may let others overwrite files, so what emodistill downloads is checked against these.
DIGEST_TAG = "emodistill.sha256."
PYFUNC_FILE = Path(__file__).with_name("pyfunc_generator.py")
# What the pyfunc model's predict() accepts (per-label counts, optionally a seed and balanced=False) and returns:
# one row per synthetic utterance, in the feature-table schema.
PYFUNC_SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec("string", "label"),
        ColSpec("long", "count"),
        ColSpec("long", "seed", required=False),
        ColSpec("boolean", "balanced", required=False),
    ]),
    outputs=Schema([
        ColSpec("string", "utt_id"),
        ColSpec("string", "speaker"),
        ColSpec("string", "gender", required=False),
        ColSpec("integer", "session", required=False),
        ColSpec("string", "label"),
        ColSpec("integer", "n_frames"),
        ColSpec(Array(Array(DataType.float)), "features"),
    ]))


def start_parent_run(experiment: str, sweep_name: str, params: Mapping[str, object],
                     tags: Mapping[str, str] | None = None, tracking_uri: str | None = None, *,
                     features: str | None = None) -> str:
    """Create the sweep's parent run in `experiment` (created if missing); `features` is the table fingerprint."""
    client = tracking_client(tracking_uri)
    experiment_id = get_or_create_experiment(experiment, client.tracking_uri)
    run_tags = {**(tags or {}), KIND_TAG: "sweep"}
    if features:
        run_tags[FEATURES_TAG] = features
    run = client.create_run(experiment_id, tags=run_tags, run_name=sweep_name)
    log_params_flat(client, run.info.run_id, params)
    log.debug("sweep %s: parent run %s in experiment %r (%s)", sweep_name, run.info.run_id, experiment,
             client.tracking_uri)
    return run.info.run_id


def start_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, name: str,
                    params: Mapping[str, object], tags: Mapping[str, str] | None = None) -> str:
    """Create a trial's child run from ids alone (works in any process that reaches the store)."""
    parent_tags = client.get_run(parent_run_id).data.tags
    run_tags = {**(tags or {}), KIND_TAG: "trial", MLFLOW_PARENT_RUN_ID: parent_run_id}
    if FEATURES_TAG in parent_tags:
        run_tags.setdefault(FEATURES_TAG, parent_tags[FEATURES_TAG])
    run = client.create_run(experiment_id, tags=run_tags, run_name=name)
    log_params_flat(client, run.info.run_id, params)
    return run.info.run_id


def sweep_runs(client: MlflowClient, experiment_id: str, parent_run_id: str, kind: str | None = None) -> list[Run]:
    """The runs of one sweep (its parent run's children): those of one kind (`trial`, `baseline`), or all."""
    where = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
    return search_all_runs(client, experiment_id, where + (f" and tags.`{KIND_TAG}` = '{kind}'" if kind else ""))


def finished_reference(client: MlflowClient, experiment_id: str, parent_run_id: str,
                       params: Mapping[str, object]) -> tuple[str, dict] | None:
    """A sweep's finished real-data reference run whose params match `params` (its fold), and the record it logged;
    None when there is none yet (a resumed sweep reuses its references)."""
    where = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' and tags.`{KIND_TAG}` = 'baseline'"
    where += "".join(f" and params.`{key}` = '{value}'" for key, value in params.items())
    existing = client.search_runs([experiment_id], where, max_results=1)
    if not existing or existing[0].info.status != "FINISHED":
        return None
    run_id = existing[0].info.run_id
    path = client.download_artifacts(run_id, REFERENCE_FILE)
    return run_id, read_json(path, ReferenceRecord, missing=f"missing from reference run {run_id}").model_dump()


def log_reference(client: MlflowClient, experiment_id: str, parent_run_id: str, name: str, features: str,
                  params: Mapping[str, object], metrics: Mapping[str, float], record: dict) -> str:
    """Log a sweep's real-data reference as a finished `baseline` child run: params, metrics and `record` (the
    reference's predictions) as REFERENCE_FILE; returns its run id."""
    tags = {KIND_TAG: "baseline", MLFLOW_PARENT_RUN_ID: parent_run_id, FEATURES_TAG: features}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    log_params_flat(client, run_id, params)
    log_metrics(client, run_id, metrics, step=0)
    client.log_dict(run_id, record, REFERENCE_FILE)
    finish_run(client, run_id)
    return run_id


def find_or_resume_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, name: str,
                             params: Mapping[str, object], tags: Mapping[str, str] | None = None,
                             run_id: str | None = None) -> str:
    """The trial's run, reopened (RUNNING) when `run_id` or a child of the parent named `name` exists; else a new one.

    A Ray trial restored from its checkpoint passes the run id saved there; a trial restarted before its
    first checkpoint is found by name, so neither leaves a duplicate run behind. A reopened run gets `tags`
    again: a restart may land on another node.
    """
    existing = _trial_by_id(client, parent_run_id, run_id) if run_id else _trial_by_name(
        client, experiment_id, parent_run_id, name)
    if existing is None:
        return start_trial_run(client, experiment_id, parent_run_id, name, params, tags)
    client.update_run(existing, status=RunStatus.to_string(RunStatus.RUNNING))
    client.log_batch(existing, tags=[RunTag(key, str(value)) for key, value in (tags or {}).items()])
    # Params are immutable in MLflow; logging the same values again is a no-op that fills any gap
    # left by an attempt that died before logging them.
    log_params_flat(client, existing, params)
    log.info("trial %s: resuming MLflow run %s", name, existing)
    return existing


def _trial_by_id(client: MlflowClient, parent_run_id: str, run_id: str) -> str | None:
    """`run_id` if it exists under `parent_run_id`; None (with a warning) if the store has no such run."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        log.warning("run %s from the checkpoint is not in %s; starting a new run", run_id, client.tracking_uri)
        return None
    if run.data.tags.get(MLFLOW_PARENT_RUN_ID) != parent_run_id:
        raise EmodistillError(f"run {run_id} from the checkpoint belongs to parent run "
                              f"{run.data.tags.get(MLFLOW_PARENT_RUN_ID)}, not to this sweep's {parent_run_id}")
    return run_id


def _trial_by_name(client: MlflowClient, experiment_id: str, parent_run_id: str, name: str) -> str | None:
    """The id of the parent's child run named `name`, if any."""
    # Matched here, not in the filter: MLflow's filter syntax cannot escape quotes inside a name.
    children = search_all_runs(client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'")
    return next((run.info.run_id for run in children if run.info.run_name == name), None)


def log_params_flat(client: MlflowClient, run_id: str, params: Mapping[str, object]) -> None:
    """Log dotted params in batches; values are stringified and cut to MLflow's length limit (with a warning)."""
    entries = [Param(key, _fit(key, str(value), MAX_PARAM_VAL_LENGTH)) for key, value in params.items()]
    for start in range(0, len(entries), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=entries[start:start + MAX_PARAMS_TAGS_PER_BATCH])


def _fit(key: str, value: str, limit: int) -> str:
    """`value`, truncated to `limit` characters if longer."""
    if len(value) <= limit:
        return value
    log.warning("param %s is %d characters; MLflow keeps %d, so it is truncated", key, len(value), limit)
    return value[:limit - 3] + "..."


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Log `metrics` at `step` in batches."""
    now = int(time.time() * 1000)
    try:
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run {run_id}: metrics must be numbers, got {dict(metrics)} ({exc})") from None
    for start in range(0, len(entries), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=entries[start:start + MAX_METRICS_PER_BATCH])


def log_generator_artifact(client: MlflowClient, run_id: str, generator_dir: str | Path) -> None:
    """Store a generator directory (config.json + model.safetensors) as the run's artifact `generator/`, and the
    SHA-256 of each file as the run's tags."""
    path = _checked_generator_dir(generator_dir)
    client.log_batch(run_id, tags=[RunTag(DIGEST_TAG + name, file_sha256(path / name)) for name in GENERATOR_FILES])
    client.log_artifacts(run_id, str(path), GENERATOR_ARTIFACT)


def log_distilled_sets(client: MlflowClient, run_id: str, folder: str | Path) -> None:
    """A trial's distilled sets (`ppc{N}.arrow` files of `folder`) as the run's artifacts `distilled/`, and the
    SHA-256 of each as the run's tags."""
    folder = Path(folder)
    names = sorted(path.name for path in folder.glob("*.arrow"))
    client.log_batch(run_id, tags=[RunTag(f"{DIGEST_TAG}{DISTILLED_ARTIFACT}/{name}", file_sha256(folder / name))
                                   for name in names])
    client.log_artifacts(run_id, str(folder), DISTILLED_ARTIFACT)


def download_distilled_set(run_id: str, ppc: int, directory: str | Path, tracking_uri: str | None = None) -> Path:
    """The run's distilled set of `ppc` per class, downloaded into `directory` and checked against the SHA-256 the
    run recorded for it."""
    client = reading_client(tracking_uri)
    name = f"{DISTILLED_ARTIFACT}/ppc{ppc}.arrow"
    [expected] = recorded_digests(client, run_id, [name]).values()
    try:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(directory),
                                                         tracking_uri=client.tracking_uri))
    except MlflowException as exc:
        raise EmodistillError(f"run {run_id} has no readable '{name}' artifact in {client.tracking_uri} "
                              f"({exc.message}); its sweep logged the budgets it scored") from None
    if file_sha256(local) != expected:
        raise IntegrityError(f"run {run_id}: {name} in {client.tracking_uri} does not match the SHA-256 recorded "
                             "when the run logged it (the file was replaced since); it is not read")
    return local


def recorded_digests(client: MlflowClient, run_id: str, names=GENERATOR_FILES) -> dict[str, str]:
    """The SHA-256 the run recorded for each file of `names`; a run without them cannot be verified (an error)."""
    tags = client.get_run(run_id).data.tags
    missing = [name for name in names if DIGEST_TAG + name not in tags]
    if missing:
        raise IntegrityError(f"run {run_id} records no SHA-256 for {missing} (logged by an emodistill before 0.2?): "
                             "its files cannot be verified, so they are not loaded")
    return {name: tags[DIGEST_TAG + name] for name in names}


def mismatched(directory: Path, digests: Mapping[str, str]) -> list[str]:
    """The files of `directory` whose SHA-256 differs from `digests` (a missing file counts)."""
    return [name for name, digest in digests.items()
            if not (directory / name).is_file() or file_sha256(directory / name) != digest]


def log_generator_model(run_id: str, generator_dir: str | Path, tracking_uri: str | None = None,
                        name: str = "generator_model") -> str:
    """Log the generator as an MLflow pyfunc model "from code" (nothing pickled) linked to `run_id`; return its URI."""
    generator_dir = _checked_generator_dir(generator_dir)
    client = tracking_client(tracking_uri)
    run = client.get_run(run_id)
    # Created here rather than by log_model, which would file it under the process's active experiment.
    model = client.create_logged_model(run.info.experiment_id, name=name, source_run_id=run_id)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    with global_tracking_uri(client.tracking_uri):  # log_model has no client argument
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_FILE),
            artifacts={GENERATOR_ARTIFACT: str(generator_dir)},
            signature=PYFUNC_SIGNATURE,
            input_example=_input_example(generator_dir),
            pip_requirements=[f"emodistill=={__version__}"],
            model_id=model.model_id,
        )
    # MLflow runs this file when anyone loads the model: record what it must be.
    client.set_tag(run_id, DIGEST_TAG + PYFUNC_FILE.name, file_sha256(PYFUNC_FILE))
    return info.model_uri


def _input_example(generator_dir: Path) -> pd.DataFrame:
    """Two utterances of every label the generator knows: shown with the model, and checked against its signature."""
    labels = read_config(generator_dir)["label_names"]
    return pd.DataFrame({"label": labels, "count": [2] * len(labels)})


def _checked_generator_dir(generator_dir: str | Path) -> Path:
    """`generator_dir` if it holds a generator artifact's files."""
    path = Path(generator_dir)
    missing = _missing_generator_files(path)
    if missing:
        raise ConfigError(f"{path}: not a generator directory (missing {', '.join(missing)})")
    return path


def finish_run(client: MlflowClient, run_id: str, status: str = "FINISHED", reason: str | None = None) -> None:
    """End a run; a failure `reason` is kept as the tag `emodistill.failure` and the artifact failure.txt."""
    if status not in ("FINISHED", "FAILED", "KILLED"):
        raise ConfigError(f"finish_run: status must be FINISHED, FAILED or KILLED, got {status!r}")
    if reason:
        client.set_tag(run_id, FAILURE_TAG, _fit(FAILURE_TAG, reason, MAX_TAG_VAL_LENGTH))
        client.log_text(run_id, reason, FAILURE_ARTIFACT)
    client.set_terminated(run_id, status=status)


def _missing_generator_files(path: Path) -> list[str]:
    """The files of a generator artifact that `path` lacks."""
    return [name for name in GENERATOR_FILES if not (path / name).is_file()]


def download_generator(run_id: str, tracking_uri: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """The run's `generator/` artifact as a local directory, downloaded once into the cache, its files checked
    against the SHA-256 the run recorded (a cached copy that no longer matches is downloaded again)."""
    client = reading_client(tracking_uri)
    digests = recorded_digests(client, run_id)
    target = Path(cache_dir) / "generators" / run_id if cache_dir else runtime_cache_dir("generators", run_id)
    if target.is_dir():
        if not mismatched(target, digests):
            return target
        log.warning("cached generator %s does not match its recorded SHA-256; downloading it again", target)
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.tmp-", dir=target.parent))
    try:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=GENERATOR_ARTIFACT,
                                                        dst_path=str(staging), tracking_uri=client.tracking_uri)
        except MlflowException as exc:
            raise EmodistillError(f"run {run_id} has no readable '{GENERATOR_ARTIFACT}/' artifact "
                                  f"in {client.tracking_uri} ({exc.message})") from None
        changed = mismatched(Path(local), digests)
        if changed:
            raise IntegrityError(f"run {run_id}: {GENERATOR_ARTIFACT}/{', '.join(changed)} in {client.tracking_uri} "
                                 "does not match the SHA-256 recorded when the run logged it (the file was replaced "
                                 "since); it is not loaded")
        try:
            os.replace(local, target)
        except OSError:
            if mismatched(target, digests):  # else another process cached the same run meanwhile
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
