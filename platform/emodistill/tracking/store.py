"""Where runs live: clients bound to a tracking URI, experiments, and requests that give up on a server in seconds."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, Run
from mlflow.environment_variables import (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                                          MLFLOW_HTTP_REQUEST_TIMEOUT)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from emodistill import storage
from emodistill.errors import ConfigError, EmodistillError, mlflow_problem
from emodistill.tracking.uris import (artifact_root_for, check_existing_store, is_local_uri, resolve_tracking_uri,
                                      sqlite_path)

# The experiment type MLflow 3's UI opens an experiment in: its model-training view (runs, charts, models), not the
# GenAI one (traces, judges, prompts) it guesses for an experiment without the tag.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# A command that only reads gives up on a server within seconds; MLflow's defaults (7 retries, doubling from 2 s,
# 120 s timeouts) suit a busy server that rate-limits, and make one that is down look like a hang of minutes.
FAIL_FAST_HTTP = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "2",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "6",
}

# A trial, which logs for hours, rides out a server restart of a minute or two, but not a server that stays down:
# then its requests fail within minutes (about 6 x 30 s of timeouts plus 62 s of backoff), the trial errors, and Tune
# restarts it from its checkpoint (max_failures). Artifacts a trial uploads to S3 itself retry 3 times.
TRIAL_HTTP = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "5",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "2",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "30",
    "AWS_MAX_ATTEMPTS": "3",
    "AWS_RETRY_MODE": "standard",
}


def bound_trial_requests() -> None:
    """In a trial's worker process: MLflow's and boto3's requests give up within minutes (TRIAL_HTTP), where their
    defaults can wait far longer on a server that accepts connections and never answers; the user's settings win."""
    for name, value in TRIAL_HTTP.items():
        os.environ.setdefault(name, value)


def tracking_client(uri: str | None = None) -> MlflowClient:
    """A client bound to the resolved URI (creating the sqlite file's folder); no global MLflow state."""
    uri = check_writable_store(uri)
    if uri.startswith("sqlite:"):
        sqlite_path(uri).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def check_writable_store(uri: str | None = None) -> str:
    """The resolved URI, a sqlite store's file and folder checked to be writable: MLflow retries a store it cannot
    open for minutes, warning at every try."""
    uri = resolve_tracking_uri(uri)
    if uri.startswith("sqlite:"):
        path = sqlite_path(uri)
        try:
            storage.check_writable(path.parent)
        except ConfigError as exc:
            raise ConfigError(f"tracking store {exc}") from None
        if path.exists() and not (path.is_file() and os.access(path, os.R_OK | os.W_OK)):
            raise ConfigError(f"tracking store {path}: not a file this user can write: check --tracking-uri")
    return uri


def reading_client(uri: str | None = None) -> MlflowClient:
    """A client for reading runs: a sqlite store must already be one (reading never creates or migrates a store)."""
    return MlflowClient(tracking_uri=check_existing_store(uri))


@contextmanager
def failing_fast(uri: str | None = None) -> Iterator[None]:
    """For the block, MLflow's HTTP requests give up within seconds, and a tracking server that does not answer (or
    any other MLflow error: a refused login, a store MLflow cannot open) is an EmodistillError naming `uri`; the
    user's own MLFLOW_HTTP_REQUEST_* settings win."""
    previous = {name: os.environ.get(name) for name in FAIL_FAST_HTTP}
    os.environ.update({name: value for name, value in FAIL_FAST_HTTP.items() if previous[name] is None})
    try:
        yield
    except MlflowException as exc:
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, requests.RequestException):
            raise EmodistillError(mlflow_problem(exc, resolve_tracking_uri(uri))) from None
        raise EmodistillError(f"tracking server {resolve_tracking_uri(uri)} does not answer "
                              f"({type(cause).__name__} after {os.environ[MLFLOW_HTTP_REQUEST_MAX_RETRIES.name]} "
                              "retries): start it, or check --tracking-uri and $MLFLOW_TRACKING_URI") from None
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)


def check_server(uri: str) -> None:
    """Fail within seconds, naming `uri`, when a tracking server does not answer (local stores are not asked)."""
    if is_local_uri(uri):
        return
    with failing_fast(uri):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


@contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide URI at `uri` for the block, for the few APIs that accept no client."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def get_or_create_experiment(name: str, tracking_uri: str | None = None) -> str:
    """The id of experiment `name`, created if missing (artifacts beside a local store, server default otherwise)."""
    client = tracking_client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root_for(client.tracking_uri)
        location = (root / _folder_name(name)).as_uri() if root else None
        try:
            return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except MlflowException as exc:
            # Another trial created it between our lookup and create.
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise EmodistillError(f"experiment {name!r} is deleted in {client.tracking_uri}: "
                              "restore it (mlflow experiments restore) or choose another name")
    return experiment.experiment_id


def _folder_name(name: str) -> str:
    """A file-system-safe folder name for an experiment's artifacts."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def search_all_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Every active run of the experiment matching `filter_string`, across result pages."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
