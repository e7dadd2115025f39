"""The generator artifact: a directory with `config.json` and `model.safetensors` (DESIGN "Generator artifacts")."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from emodistill import __version__
from emodistill.errors import ConfigError, field_problems
from emodistill.files import atomic_path, read_json
from emodistill.generator.sampling import TrainedGenerator
from emodistill.models import ModelConfig, build_generator, count_parameters
from emodistill.runtime import resolve_device

log = logging.getLogger(__name__)

FORMAT = "emodistill-generator"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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
    """The artifact's config.json, checked for format and required keys."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ConfigError(f"{path}: not a generator artifact (missing {CONFIG_FILE})")
    config = read_json(file, missing=f"not a generator artifact (missing {CONFIG_FILE})")
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{file}: expected format {FORMAT!r} version {FORMAT_VERSION}, "
                          f"got {config.get('format')!r} version {config.get('format_version')!r}")
    required = ("model", "label_names", "class_prior", "feature_meta", "normalization", "created")
    missing = [key for key in required if key not in config]
    if missing:
        raise ConfigError(f"{file}: lacks key(s) {missing}")
    problems = _disagreements(config)
    if problems:
        raise ConfigError(f"{file}: {'; '.join(problems)} (a damaged or hand-edited artifact: save it again)")
    return config


def _disagreements(config: dict[str, Any]) -> list[str]:
    """How the label list, class prior, feature metadata and normalisation disagree with the model's sizes."""
    model = config["model"] if isinstance(config["model"], dict) else {}
    n_classes, dim = model.get("n_classes"), model.get("dim")
    labels, prior, meta, norm = (config[key] for key in ("label_names", "class_prior", "feature_meta",
                                                          "normalization"))
    problems = []
    if not isinstance(labels, list) or len(set(labels)) != len(labels) or len(labels) != n_classes:
        problems.append(f"label_names {labels} are not model.n_classes = {n_classes} distinct labels")
    if not _numbers(prior, n_classes) or min(prior) < 0 or sum(prior) <= 0:
        problems.append(f"class_prior {_shape(prior)}, expected model.n_classes = {n_classes} frequencies")
    if not isinstance(meta, dict) or meta.get("labels") != labels or meta.get("dim") != dim:
        shown = {key: meta.get(key) for key in ("labels", "dim")} if isinstance(meta, dict) else meta
        problems.append(f"feature_meta {shown} differs from label_names {labels} or model.dim = {dim}")
    if norm is not None:
        for key in ("mean", "std"):
            values = norm.get(key) if isinstance(norm, dict) else None
            if not _numbers(values, dim) or (key == "std" and min(values) <= 0):
                kind = "positive" if key == "std" else "finite"
                problems.append(f"normalization.{key} {_shape(values)}, expected model.dim = {dim} {kind} numbers")
    return problems


def _numbers(values: Any, length: int | None) -> bool:
    """True if `values` is a list of `length` finite numbers."""
    return (isinstance(values, list) and len(values) == length and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def _shape(values: Any) -> str:
    """What a field that should hold a list of numbers holds, in a few words."""
    return f"has {len(values)} values" if isinstance(values, list) else f"is {type(values).__name__}"


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
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ConfigError(f"{weights_file}: weight {name!r} holds NaN or infinite values "
                              "(saved from a diverged run?): train the generator again")
    module.load_state_dict(weights)
    return TrainedGenerator(module=module.to(device).eval(), config=config, device=device)
