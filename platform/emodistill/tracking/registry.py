"""The model registry: a sweep's best generator registered under a name with the alias `champion`."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST,
                                          ErrorCode)

from emodistill.downstream import DEFAULT_DECODER
from emodistill.errors import EmodistillError, IntegrityError
from emodistill.evaluate.protocol import objective_keys, split_decoder
from emodistill.files import file_sha256
from emodistill.generator import TrainedGenerator, load
from emodistill.tracking.naming import FOLD_PARAM
from emodistill.tracking.runs import (ARCH_TAG, FEATURES_TAG, PYFUNC_FILE, VARIANT_TAG, download_generator,
                                      recorded_digests)
from emodistill.tracking.store import global_tracking_uri, reading_client, tracking_client

log = logging.getLogger(__name__)

CHAMPION = "champion"
OBJECTIVE_TAG = "emodistill.objective"  # on a registered model and its versions: the dev score that chose them
# What the registry answers for a model name it lacks, and for an alias the model lacks.
NOT_FOUND = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


def register_champion(run_id: str, model_name: str, tracking_uri: str | None = None,
                      model_uri: str | None = None, objective: str | None = None) -> int:
    """Register the run's pyfunc model (`model_uri`, else the run's only logged model) as a new version of
    `model_name` aliased `champion`; the model and the version are described (scores, features, the `objective` that
    chose it, how to load it) and tagged to filter on (variant, architecture, features, objective)."""
    client = tracking_client(tracking_uri)
    model_uri = model_uri or _logged_model_uri(client, run_id)
    run = client.get_run(run_id)
    features = run.data.tags.get(FEATURES_TAG)
    model_tags = {key: value for key, value in ((OBJECTIVE_TAG, objective), (FEATURES_TAG, features)) if value}
    # The client's calls, not mlflow.register_model, which prints to stderr and cannot describe a version.
    try:
        client.create_registered_model(model_name, tags=model_tags, description=model_description(
            model_name, client.tracking_uri, objective))
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        for key, value in model_tags.items():  # the latest champion's
            client.set_registered_model_tag(model_name, key, value)
    version_tags = {key: run.data.tags[key] for key in (VARIANT_TAG, ARCH_TAG, FEATURES_TAG) if key in run.data.tags}
    with global_tracking_uri(client.tracking_uri):  # the registry resolves a models:/ source through it
        version = client.create_model_version(
            model_name, model_uri, run_id=run_id, tags={**version_tags, **model_tags},
            description=version_description(run, objective), model_id=model_uri.removeprefix("models:/"))
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    log.debug("registered %s as %s version %s (alias %s)", model_uri, model_name, version.version, CHAMPION)
    return int(version.version)


def model_description(model_name: str, tracking_uri: str, objective: str | None) -> str:
    """The registered model's description (markdown): what its versions are, and how to load the champion."""
    chosen = f" chosen on the real dev split by `{objective}`" if objective else ""
    return f"""Speech-emotion dataset generators distilled by the emodistill sweep `{model_name}`: each version is a \
trial's generator{chosen}; the alias `{CHAMPION}` marks the sweep's best.

Load the champion (its files are checked against the SHA-256 its run recorded; nothing is unpickled or run):

```python
import emodistill

generator = emodistill.best_generator("{model_name}", tracking_uri="{tracking_uri}", champion=True)
table = generator.sample(100)  # pyarrow.Table: 100 synthetic utterances per class, in the feature-table schema
```

or from the shell: `emodistill sample --experiment {model_name} --champion --ppc 100 --out synthetic.arrow \
--tracking-uri {tracking_uri}`. `mlflow.pyfunc.load_model("models:/{model_name}@{CHAMPION}")` runs the stored code: \
prefer `best_generator`, which checks that code's digest.
"""


def version_description(run: Run, objective: str | None) -> str:
    """A version's description (markdown): the trial, its dev and test UAR per budget, its features and fold."""
    metrics, tags = run.data.metrics, run.data.tags
    keys = objective_keys(metrics, objective)  # the scores of the head that chose
    decoder = split_decoder(objective or "")[1]
    rows = [f"| {n} | {_score(metrics.get(f'dev_uar_{key}'))} | {_score(metrics.get(f'uar_{key}'))} |"
            for n, key in keys.items()]
    chosen = f", chosen by `{objective}` = {_score(metrics.get(objective))}" if objective else ""
    step = metrics.get("selected_step")
    head = "UAR" if decoder == DEFAULT_DECODER else f"UAR ({decoder} decoder)"
    lines = [f"Trial `{run.info.run_name}` (run `{run.info.run_id}`){chosen}.", "",
             f"| utterances per class | dev {head} | test {head} |", "| --- | --- | --- |", *rows, ""]
    if step is not None:
        lines.append(f"Its generator is the checkpoint chosen on dev at step {int(step)}.")
    fold = run.data.params.get(FOLD_PARAM)
    if FEATURES_TAG in tags or fold is not None:
        where = f"fold {fold} (tested on session {fold}, trained on the others)" if fold is not None else ""
        fingerprint = f"fingerprint `{tags[FEATURES_TAG]}`" if FEATURES_TAG in tags else ""
        lines.append(f"Features: {', '.join(part for part in (fingerprint, where) if part)}.")
    return "\n".join(lines) + "\n"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


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
