"""Where runs live: the tracking URI, its artifact folder, experiments, and a client bound to them."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, Run
from mlflow.environment_variables import (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                                          MLFLOW_HTTP_REQUEST_TIMEOUT)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from emodistill.errors import ConfigError, EmodistillError

SQLITE_PREFIX = "sqlite:///"
DEFAULT_DB = "mlruns.db"
ARTIFACTS_DIR = "mlartifacts"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs"})
# A command that only reads gives up on a server within seconds; MLflow's defaults (7 retries, doubling from 2 s,
# 120 s timeouts) suit a busy server that rate-limits, and make one that is down look like a hang of minutes.
FAIL_FAST_HTTP = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "2",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "6",
}


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else `sqlite:///<cwd>/mlruns.db`; sqlite paths made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or SQLITE_PREFIX + DEFAULT_DB
    if uri.startswith("sqlite:"):
        # Absolute, so that Ray trials (which run in their own working directory) reach the same file.
        return SQLITE_PREFIX + str(sqlite_path(uri).resolve())
    return uri


def sqlite_path(uri: str) -> Path:
    """The database file of a `sqlite:///...` URI (relative to the working directory unless absolute)."""
    if not uri.startswith(SQLITE_PREFIX) or len(uri) == len(SQLITE_PREFIX):
        raise ConfigError(f"tracking URI {uri!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    return Path(uri[len(SQLITE_PREFIX):])


def is_local_uri(uri: str) -> bool:
    """True for stores on this machine's disk (sqlite, file, plain paths); False for servers."""
    return urlparse(uri).scheme in ("sqlite", "file", "")


def artifact_root_for(uri: str) -> Path | None:
    """`mlartifacts/` beside a sqlite store's file; None for other stores (they keep their own default)."""
    uri = resolve_tracking_uri(uri)
    return sqlite_path(uri).parent / ARTIFACTS_DIR if uri.startswith("sqlite:") else None


def tracking_client(uri: str | None = None) -> MlflowClient:
    """A client bound to the resolved URI (creating the sqlite file's folder); no global MLflow state."""
    uri = resolve_tracking_uri(uri)
    if uri.startswith("sqlite:"):
        sqlite_path(uri).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def reading_client(uri: str | None = None) -> MlflowClient:
    """A client for reading runs: a sqlite store must already be one (reading never creates or migrates a store)."""
    return MlflowClient(tracking_uri=check_existing_store(uri))


def check_existing_store(uri: str | None = None, hint: str = "check --tracking-uri or $MLFLOW_TRACKING_URI") -> str:
    """The resolved URI; for sqlite, once its file is checked, read-only, to be an SQLite database with MLflow's tables.

    MLflow writes its whole schema into any sqlite file it opens (a mistyped path, an empty or foreign file), so
    commands that only read check the file before MLflow touches it.
    """
    uri = resolve_tracking_uri(uri)
    if not uri.startswith("sqlite:"):
        return uri
    path = sqlite_path(uri)

    def refuse(problem: str) -> NoReturn:
        raise EmodistillError(f"tracking store {path} {problem}: expected an MLflow sqlite store ({hint})")

    if not path.is_file():
        refuse("does not exist")
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        refuse("is empty (0 bytes)" if not header else "is not an SQLite database")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        refuse(f"is not a readable SQLite database ({exc})")
    missing = sorted(MLFLOW_TABLES - tables)
    if missing:
        refuse(f"holds no MLflow schema (no table {', '.join(missing)})")
    return uri


@contextmanager
def failing_fast(uri: str | None = None) -> Iterator[None]:
    """For the block, MLflow's HTTP requests give up within seconds, and a tracking server that does not answer is
    an EmodistillError naming `uri`; the user's own MLFLOW_HTTP_REQUEST_* settings win."""
    previous = {name: os.environ.get(name) for name in FAIL_FAST_HTTP}
    os.environ.update({name: value for name, value in FAIL_FAST_HTTP.items() if previous[name] is None})
    try:
        yield
    except MlflowException as exc:
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, requests.RequestException):
            raise
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
            return client.create_experiment(name, artifact_location=location)
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
