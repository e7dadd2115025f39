"""The generator artifact: a directory with `config.json` and `model.safetensors` (DESIGN "Generator artifacts")."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from emodistill import __version__
from emodistill.errors import ConfigError, field_problems
from emodistill.features.schema import FeatureMeta
from emodistill.features.splits import DataConfig
from emodistill.files import atomic_path, read_json
from emodistill.generator.sampling import TrainedGenerator
from emodistill.models import ModelConfig, build_generator, count_parameters
from emodistill.runtime import resolve_device
from emodistill.strict import WRITTEN_FILE

log = logging.getLogger(__name__)

FORMAT = "emodistill-generator"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Beyond this a mean or spread is no speech feature's: samples scaled by it overflow a downstream's float32.
MAX_FEATURE_SCALE = 1e6


class Normalization(BaseModel):
    """config.json's `normalization`: the per-dimension scale of the module's output."""

    model_config = WRITTEN_FILE
    mean: list[float]
    std: list[float]


class ArtifactConfig(BaseModel):
    """config.json as artifact_config writes it, read strictly: each field's type and shape is checked by name."""

    model_config = WRITTEN_FILE
    format: str
    format_version: int
    package_version: str = ""
    created: str
    model: dict[str, Any]  # checked as a ModelConfig by `load`
    label_names: list[str]
    class_prior: list[float]
    feature_meta: FeatureMeta
    normalization: Normalization | None
    num_parameters: int | None = None
    training: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    # The fingerprint of the fold it learnt from; None: trained on data from no feature directory (or written before
    # the field): evaluate then says it cannot check the fold.
    features: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,64}$")

    @field_validator("training")
    @classmethod
    def _data_protocol_is_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        """training.data is the protocol evaluate and distilled sets re-create the generator's splits with."""
        try:
            DataConfig.model_validate(value.get("data", {}))
        except ValidationError as exc:
            raise ValueError(field_problems(exc, "data")) from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _format(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("format"), data.get("format_version")) != (FORMAT, FORMAT_VERSION):
            raise ValueError(f"expected format {FORMAT!r} version {FORMAT_VERSION}, got {data.get('format')!r} "
                             f"version {data.get('format_version')!r}")
        return data


def artifact_config(module: nn.Module, *, model_config: dict, label_names, class_prior, feature_meta: dict,
                    normalization: tuple[np.ndarray, np.ndarray] | None, training_config: dict,
                    metrics: dict, features: str | None = None) -> dict[str, Any]:
    """The content of config.json; `normalization` is the (mean, std) per dimension the module's output is scaled by,
    `features` the fingerprint of the data it learnt from (a feature directory's fold: evaluate checks it)."""
    prior = np.asarray(class_prior, dtype=np.float64)
    if len(prior) != len(label_names) or prior.sum() <= 0 or (prior < 0).any():
        raise ConfigError(f"generator artifact: class_prior {prior.tolist()} does not match labels {list(label_names)}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": dict(model_config),
        "label_names": list(label_names),
        "class_prior": (prior / prior.sum()).tolist(),
        "feature_meta": dict(feature_meta),
        "normalization": None if normalization is None else {
            "mean": np.asarray(normalization[0], np.float32).tolist(),
            "std": np.asarray(normalization[1], np.float32).tolist(),
        },
        "num_parameters": count_parameters(module),
        "training": training_config,
        "metrics": metrics,
        "features": features,
    }


def save_generator(module: nn.Module, out_dir: str | Path, *, model_config: dict, label_names, class_prior,
                   feature_meta: dict, normalization: tuple[np.ndarray, np.ndarray] | None,
                   training_config: dict, metrics: dict, features: str | None = None) -> Path:
    """Write the artifact atomically (replacing any previous one at `out_dir`); return its path."""
    out_dir = Path(out_dir)
    config = artifact_config(module, model_config=model_config, label_names=label_names, class_prior=class_prior,
                             feature_meta=feature_meta, normalization=normalization,
                             training_config=training_config, metrics=metrics, features=features)
    weights = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    with atomic_path(out_dir) as staging:
        staging.mkdir()
        save_file(weights, staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    log.info("wrote generator %s (%d parameters)", out_dir, config["num_parameters"])
    return out_dir


def save_trained(generator: TrainedGenerator, out_dir: str | Path) -> Path:
    """Write an in-memory generator (its module and config.json fields) as an artifact at `out_dir`."""
    config, norm = generator.config, generator.config["normalization"]
    return save_generator(generator.module, out_dir, model_config=config["model"], label_names=config["label_names"],
                          class_prior=config["class_prior"], feature_meta=config["feature_meta"],
                          normalization=None if norm is None else (norm["mean"], norm["std"]),
                          training_config=config["training"], metrics=config["metrics"],
                          features=config.get("features"))


def read_config(path: str | Path) -> dict[str, Any]:
    """The artifact's config.json, checked for format, field types and the agreement of its sizes."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ConfigError(f"{path}: not a generator artifact (missing {CONFIG_FILE})")
    config = read_json(file, ArtifactConfig, missing=f"not a generator artifact (missing {CONFIG_FILE})")
    problems = _disagreements(config)
    if problems:
        raise ConfigError(f"{file}: {'; '.join(problems)} (a damaged or hand-edited artifact: save it again)")
    return config.model_dump()


def _disagreements(config: ArtifactConfig) -> list[str]:
    """How the label list, class prior, feature metadata and normalisation disagree with the model's sizes."""
    n_classes, dim = config.model.get("n_classes"), config.model.get("dim")
    labels, prior, meta, norm = config.label_names, config.class_prior, config.feature_meta, config.normalization
    problems = []
    if len(set(labels)) != len(labels) or len(labels) != n_classes:
        problems.append(f"label_names {labels} are not model.n_classes = {n_classes} distinct labels")
    if len(prior) != n_classes or min(prior, default=0) < 0 or sum(prior) <= 0:
        problems.append(f"class_prior has {len(prior)} values, expected model.n_classes = {n_classes} frequencies")
    if meta.labels != labels or meta.dim != dim:
        problems.append(f"feature_meta {dict(labels=meta.labels, dim=meta.dim)} differs from label_names {labels} or "
                        f"model.dim = {dim}")
    if norm is not None:
        for key in ("mean", "std"):
            values = getattr(norm, key)
            low = 0 if key == "std" else -MAX_FEATURE_SCALE
            if len(values) != dim or not all(low < v <= MAX_FEATURE_SCALE for v in values):
                problems.append(f"normalization.{key} has {len(values)} values, expected model.dim = {dim} numbers "
                                f"in ({low:g}, {MAX_FEATURE_SCALE:g}]")
    return problems


def check_weight_shapes(weights_file: Path, model_config: ModelConfig) -> None:
    """Raise unless the weights file holds exactly the tensors of `model_config`'s generator, checked from the
    file's header and a generator built without memory (a hand-edited `model.frames: 100000000` would otherwise
    allocate gigabytes before the weights are found not to fit)."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in build_generator(model_config).state_dict().items()}
    try:
        with safe_open(str(weights_file), framework="pt") as file:
            stored = {name: tuple(file.get_slice(name).get_shape()) for name in file.keys()}  # noqa: SIM118
    except SafetensorError as exc:
        raise ConfigError(f"{weights_file}: not a readable safetensors file ({exc})") from None
    differing = sorted(name for name in expected.keys() | stored.keys() if expected.get(name) != stored.get(name))
    if differing:
        name = differing[0]
        raise ConfigError(f"{weights_file}: weights do not match the model in {CONFIG_FILE} ({len(differing)} "
                          f"tensor(s) differ; {name!r} is {_tensor_shape(stored.get(name))} in the file, "
                          f"{_tensor_shape(expected.get(name))} for the model)")


def _tensor_shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else f"of shape {list(shape)}"


def load(path: str | Path, device: str | torch.device = "cpu") -> TrainedGenerator:
    """Load a generator artifact onto `device` ("auto": cuda when available); nothing is unpickled."""
    path = Path(path)
    config = read_config(path)
    weights_file = path / WEIGHTS_FILE
    if not weights_file.is_file():
        raise ConfigError(f"{path}: not a generator artifact (missing {WEIGHTS_FILE})")
    try:
        model_config = ModelConfig(**config["model"])
    except ValidationError as exc:
        raise ConfigError(f"{path / CONFIG_FILE}: invalid 'model' section: {field_problems(exc, 'model')}") from None
    device = resolve_device(device)
    check_weight_shapes(weights_file, model_config)
    module = build_generator(model_config)
    try:
        weights = load_file(weights_file)
    except SafetensorError as exc:
        raise ConfigError(f"{weights_file}: not a readable safetensors file ({exc})") from None
    expected = module.state_dict()
    for name, tensor in weights.items():
        if tensor.dtype != expected[name].dtype:  # a float64 1e300 would load as inf, an int32 as truncated floats
            raise ConfigError(f"{weights_file}: weight {name!r} is {tensor.dtype}, expected {expected[name].dtype} "
                              "(a damaged or hand-edited artifact: save it again)")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ConfigError(f"{weights_file}: weight {name!r} holds NaN or infinite values "
                              "(saved from a diverged run?): train the generator again")
    module.load_state_dict(weights)
    return TrainedGenerator(module=module.to(device).eval(), config=config, device=device)
