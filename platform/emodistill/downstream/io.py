"""Save and load a trained downstream as a directory: config.json + model.safetensors (never pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, PositiveInt
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emodistill.downstream.model import DEFAULT_DECODER, DecoderName, Downstream, build_downstream
from emodistill.errors import EmodistillError
from emodistill.files import atomic_path, read_json
from emodistill.strict import WRITTEN_FILE

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
KIND = "emodistill.downstream"


def save_downstream(model: Downstream, directory: str | Path, extra: Mapping | None = None) -> Path:
    """Write the model to `directory` atomically (built in a sibling temp dir, then renamed); return it."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {"kind": KIND, **model.config(), "extra": dict(extra or {})}
    with atomic_path(directory) as staging:
        staging.mkdir()
        save_file(weights, staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return Path(directory)


class _SavedDownstream(BaseModel):
    """A saved downstream's config.json (save_downstream), read strictly (not the training DownstreamConfig)."""

    model_config = WRITTEN_FILE
    kind: Literal["emodistill.downstream"]  # KIND
    decoder: DecoderName = DEFAULT_DECODER  # absent: saved before decoders were chosen by name, the linear head
    dim: PositiveInt
    n_classes: PositiveInt
    hidden: PositiveInt
    extra: dict[str, Any] = {}


def read_downstream_config(directory: str | Path) -> dict:
    """The parsed config.json of a saved downstream (architecture and the caller's `extra`)."""
    config = read_json(Path(directory) / CONFIG_FILE, _SavedDownstream,
                       missing="missing; expected a downstream saved by save_downstream")
    return config.model_dump()


def load_downstream(directory: str | Path) -> Downstream:
    """Rebuild a saved downstream (eval mode, CPU) from its config.json and safetensors weights."""
    config = read_downstream_config(directory)
    model = build_downstream(config["decoder"], config["dim"], config["n_classes"], config["hidden"])
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise EmodistillError(f"{path}: missing; expected the downstream's weights")
    try:
        model.load_state_dict(load_file(path))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise EmodistillError(f"{path}: corrupt or does not match {CONFIG_FILE} ({exc})") from None
    return model.eval()
