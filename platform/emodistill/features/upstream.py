"""The upstream interface and a registry: `make_upstream("fbank")`, `make_upstream("hf", model=...)`."""

from __future__ import annotations

import inspect
from typing import Protocol

import numpy as np

from emodistill.errors import ConfigError
from emodistill.features.fbank import FbankConfig, FbankUpstream


class Upstream(Protocol):
    """What extraction needs from a feature extractor."""

    name: str
    version: str
    layer: int | None
    dim: int
    sample_rate: int
    frame_rate: float
    batch_size: int

    def __call__(self, wav: np.ndarray) -> np.ndarray: ...

    def batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]: ...

    def describe(self) -> dict: ...


def _bind(name: str, target, options: dict) -> None:
    """Reject options `target` does not take, naming them."""
    try:
        inspect.signature(target).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"upstream {name!r}: bad options {sorted(options)} ({exc})") from None


def _fbank(**options) -> FbankUpstream:
    _bind("fbank", FbankConfig, options)
    return FbankUpstream(FbankConfig(**options))


def _hf(**options) -> Upstream:
    # Imported here so that the fbank path never imports the torch model code.
    from emodistill.features.hf import HFUpstream

    _bind("hf", HFUpstream, options)
    return HFUpstream(**options)


UPSTREAMS = {"fbank": _fbank, "hf": _hf}


def make_upstream(name: str, **options) -> Upstream:
    """Build the upstream called `name` with its keyword options."""
    if name not in UPSTREAMS:
        raise ConfigError(f"upstream {name!r} is unknown; expected one of {sorted(UPSTREAMS)}")
    return UPSTREAMS[name](**options)
