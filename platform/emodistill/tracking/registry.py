"""The model registry: a sweep's best generator registered under a name with the alias `champion`."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode

from emodistill.errors import EmodistillError, IntegrityError
from emodistill.files import file_sha256
from emodistill.generator import TrainedGenerator, load
from emodistill.tracking.runs import PYFUNC_FILE, download_generator, recorded_digests
from emodistill.tracking.store import global_tracking_uri, reading_client, tracking_client

log = logging.getLogger(__name__)

CHAMPION = "champion"
# What the registry answers for a model name it lacks, and for an alias the model lacks.
NOT_FOUND = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


def register_champion(run_id: str, model_name: str, tracking_uri: str | None = None,
                      model_uri: str | None = None) -> int:
    """Register the run's pyfunc model (`model_uri`, else the run's only logged model) and alias it `champion`."""
    client = tracking_client(tracking_uri)
    model_uri = model_uri or _logged_model_uri(client, run_id)
    with global_tracking_uri(client.tracking_uri):  # register_model has no client argument
        version = mlflow.register_model(model_uri, model_name)
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    log.info("registered %s as %s version %s (alias %s)", model_uri, model_name, version.version, CHAMPION)
    return int(version.version)


def _logged_model_uri(client: mlflow.MlflowClient, run_id: str) -> str:
    """`models:/<id>` of the single model logged by `run_id`."""
    outputs = client.get_run(run_id).outputs
    models = outputs.model_outputs if outputs else []
    if len(models) != 1:
        raise EmodistillError(f"run {run_id} logged {len(models)} models; pass the model URI to register explicitly")
    return f"models:/{models[0].model_id}"


def champion_run_id(model_name: str, tracking_uri: str | None = None) -> str:
    """The run that produced the version aliased `champion` of `model_name`."""
    client = reading_client(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:  # e.g. a server that does not answer
            raise
        raise EmodistillError(f"registered model {model_name!r} has no version aliased {CHAMPION!r} "
                              f"in {client.tracking_uri} ({exc.message})") from None
    if not version.run_id:
        raise EmodistillError(f"{model_name} version {version.version} ({CHAMPION}) was not logged from a run")
    return version.run_id


def load_champion(model_name: str, tracking_uri: str | None = None, cache_dir: str | Path | None = None
                  ) -> TrainedGenerator:
    """Load the `champion` generator of `model_name` from its run's `generator/` artifact (no pickle, nothing run),
    after checking its files and the registered model's code against the SHA-256 its run recorded."""
    run_id = champion_run_id(model_name, tracking_uri)
    verify_champion_code(model_name, tracking_uri)
    return load(download_generator(run_id, tracking_uri, cache_dir))


def verify_champion_code(model_name: str, tracking_uri: str | None = None) -> None:
    """Raise IntegrityError if the champion's pyfunc code in the store is not the file its run logged.

    `mlflow.pyfunc.load_model("models:/NAME@champion")` executes that file; anyone who could write the
    artifact store could have replaced it. emodistill never executes it, but says so before a user does.
    """
    client = reading_client(tracking_uri)
    version = client.get_model_version_by_alias(model_name, CHAMPION)
    expected = recorded_digests(client, version.run_id, names=(PYFUNC_FILE.name,))[PYFUNC_FILE.name]
    location = client.get_logged_model(version.source.removeprefix("models:/")).artifact_location
    with tempfile.TemporaryDirectory() as tmp, global_tracking_uri(client.tracking_uri):
        code = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/{PYFUNC_FILE.name}", dst_path=tmp))
        if file_sha256(code) != expected:
            raise IntegrityError(f"{model_name}@{CHAMPION}: its code {PYFUNC_FILE.name} in {client.tracking_uri} does "
                                 f"not match the SHA-256 its run {version.run_id} recorded: it was replaced; do not "
                                 "load it with mlflow.pyfunc (which would execute it)")
