"""Resumable training state: networks, optimisers and every RNG, saved atomically and read without unpickling code."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emodistill.errors import ConfigError
from emodistill.files import atomic_path

CHECKPOINT_FILE = "checkpoint.pt"


def rng_state(numpy_rng: np.random.Generator, noise: torch.Generator) -> dict[str, Any]:
    """Every random stream the trainer draws from, as tensors, ints and lists (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "noise": noise.get_state(),
        "numpy": numpy_rng.bit_generator.state,
        "python": [version, list(internal), gauss],
    }


def restore_rng(state: dict[str, Any], numpy_rng: np.random.Generator, noise: torch.Generator) -> None:
    """Put every random stream back where `rng_state` found it."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    noise.set_state(state["noise"])
    numpy_rng.bit_generator.state = state["numpy"]
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to directory/checkpoint.pt atomically (the previous checkpoint survives a crash mid-write)."""
    path = Path(directory) / CHECKPOINT_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(directory: str | Path) -> dict[str, Any] | None:
    """The state saved in directory/checkpoint.pt, or None when there is none; tensors come back on the CPU."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        # torch's own text spans lines and suggests weights_only=False, which would run the file's code.
        raise ConfigError(f"{path}: not a readable emodistill checkpoint ({type(exc).__name__}; damaged, or not "
                          "written by emodistill: nothing in it is unpickled); start a new run in another folder, "
                          "or remove it to start again") from None
