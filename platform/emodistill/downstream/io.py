"""Save and load a trained downstream as a directory: config.json + model.safetensors (never pickle)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emodistill.downstream.model import Downstream
from emodistill.errors import ConfigError, EmodistillError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
KIND = "emodistill.downstream"


def save_downstream(model: Downstream, directory: str | Path, extra: Mapping | None = None) -> Path:
    """Write the model to `directory` atomically (built in a sibling temp dir, then renamed); return it."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, staging / WEIGHTS_FILE)
        config = {"kind": KIND, **model.config(), "extra": dict(extra or {})}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        _replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _replace_dir(source: Path, target: Path) -> None:
    # os.replace cannot overwrite a non-empty directory: move the old one aside first.
    if not target.exists():
        os.replace(source, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(source, target)
    shutil.rmtree(old)


def read_downstream_config(directory: str | Path) -> dict:
    """The parsed config.json of a saved downstream (architecture and the caller's `extra`)."""
    path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; expected a downstream saved by save_downstream") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("kind") != KIND:
        raise ConfigError(f"{path}: 'kind' is not {KIND!r}; not a saved downstream")
    for key in ("dim", "n_classes", "hidden"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ConfigError(f"{path}: '{key}' must be a positive integer, got {config.get(key)!r}")
    return config


def load_downstream(directory: str | Path) -> Downstream:
    """Rebuild a saved downstream (eval mode, CPU) from its config.json and safetensors weights."""
    config = read_downstream_config(directory)
    model = Downstream(config["dim"], config["n_classes"], config["hidden"])
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise EmodistillError(f"{path}: missing; expected the downstream's weights")
    try:
        model.load_state_dict(load_file(path))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise EmodistillError(f"{path}: corrupt or does not match {CONFIG_FILE} ({exc})") from None
    return model.eval()
