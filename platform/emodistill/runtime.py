"""Where things run and where they are cached: the device choice and the cache folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import torch
from pydantic import AfterValidator

from emodistill.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` -> cuda when available, else cpu; anything else is passed to torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r} is not a torch device ({exc})") from None


def check_device_name(value: str) -> str:
    """Validate a config's device field: 'auto' or a torch device string."""
    if value != "auto":
        try:
            resolve_device(value)
        except ConfigError:
            raise ValueError(f"expected 'auto' or a torch device such as 'cpu' or 'cuda:0', got {value!r}") from None
    return value


DeviceName = Annotated[str, AfterValidator(check_device_name)]


def cache_dir(*parts: str) -> Path:
    """$EMODISTILL_CACHE, else $XDG_CACHE_HOME/emodistill, else ~/.cache/emodistill (joined with `parts`)."""
    root = os.environ.get("EMODISTILL_CACHE")
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emodistill"
    return Path(root).expanduser().joinpath(*parts)
