"""Where things run and where they are cached: the device choice and the cache folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import torch
from pydantic import AfterValidator

from emodistill.errors import ConfigError


def resolve_device(device: str | torch.device, field: str | None = None) -> torch.device:
    """`auto` -> cuda when available, else cpu; anything else is passed to torch.device and must be usable here
    (a ConfigError naming `field`, the config key it came from, otherwise)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = f"'{field}': " if field else ""
    resolved = _parsed(device, where)
    problem = _unusable(resolved)
    if problem:
        raise ConfigError(f"{where}device {device!r}: {problem}: choose 'auto' or 'cpu', or install a torch built "
                          "for it")
    return resolved


def _parsed(device: str | torch.device, where: str = "") -> torch.device:
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"{where}device {device!r} is not a torch device ({exc})") from None


def _unusable(device: torch.device) -> str | None:
    """Why this torch cannot run on `device` (not built for it, no such device), None when it can."""
    if device.type == "cpu" or device.type == "meta":
        return None
    backend = getattr(torch, device.type, None)
    if backend is None or not hasattr(backend, "is_available"):
        return f"this torch has no backend for {device.type!r}"
    if not backend.is_available():
        return f"this torch ({torch.__version__}) cannot use {device.type} here (not built for it, or no device)"
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if device.index is not None and device.index >= count:
        return f"there is no {device.type} device {device.index} (this machine has {count})"
    return None


def check_device_name(value: str) -> str:
    """Validate a config's device field: 'auto' or a device string torch can parse. Whether this machine can use it
    is checked where it is used (resolve_device): a GPU worker's config validates on a CPU-only driver."""
    if value != "auto":
        try:
            _parsed(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


DeviceName = Annotated[str, AfterValidator(check_device_name)]


def cache_dir(*parts: str) -> Path:
    """$EMODISTILL_CACHE, else $XDG_CACHE_HOME/emodistill, else ~/.cache/emodistill (joined with `parts`)."""
    variable, root = "EMODISTILL_CACHE", os.environ.get("EMODISTILL_CACHE") or None  # set but empty is unset
    if root is None:
        variable = "XDG_CACHE_HOME"
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emodistill"
    try:
        return Path(root).expanduser().joinpath(*parts)
    except RuntimeError:  # ~user of no such user
        raise ConfigError(f"${variable} {root}: its ~ names no home folder: give an absolute path") from None
