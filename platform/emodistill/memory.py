"""Memory checks before allocating: what this machine (or a CUDA device) can still give."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from emodistill.errors import EmodistillError

if TYPE_CHECKING:
    import torch


def available_memory() -> int:
    """Bytes of memory this machine can still give without swapping (MemAvailable; free pages where it is unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(needed: int, what: str, advice: str, device: torch.device | None = None) -> None:
    """Raise EmodistillError "`what`: needs about X GiB ..., `advice`" unless `needed` bytes are available on
    `device` (a CUDA device's free memory; the machine's for any other, or None)."""
    on_gpu = device is not None and device.type == "cuda"
    if on_gpu:
        import torch  # only here: the corpus commands check memory too, and never load torch

        available = torch.cuda.mem_get_info(device)[0]
    else:
        available = available_memory()
    if needed > available:
        where = f"{device} has free" if on_gpu else "this machine has available"
        raise EmodistillError(f"{what}: needs about {needed / 2**30:.1f} GiB of memory, more than the "
                              f"{available / 2**30:.1f} GiB {where}: {advice}")
