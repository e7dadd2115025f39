"""How big a model is, for the paper's Table 1 comparison."""

from __future__ import annotations

from torch import nn

FLOAT32_BYTES = 4


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def size_mb(module: nn.Module) -> float:
    """Megabytes (1e6 bytes) of the weights stored as float32: parameters plus buffers (BatchNorm statistics)."""
    return sum(t.numel() for t in module.state_dict().values()) * FLOAT32_BYTES / 1e6
