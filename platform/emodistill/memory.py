"""Memory checks before allocating: what this machine (or a CUDA device) can still give."""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim; nothing where there is none).

    Every batch of a speech encoder has a new length, and oneDNN allocates its convolution buffers for each new
    shape; glibc's dynamic mmap threshold puts such buffers on the heap, whose freed pages it keeps, so without
    this the resident memory of an extraction grows with its number of batches (benchmarks/extract_memory.py).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# oneDNN keeps the primitive it made for each convolution shape (1024 by default), with its buffers; a speech encoder
# sees a new shape at every batch length, none of them again, so that cache only grows during an extraction.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
EXTRACTION_ONEDNN_CACHE = "4"


@contextmanager
def shape_cache_capped() -> Iterator[None]:
    """For the block, oneDNN's primitive cache is capped (unless the user set its size); the environment is restored
    after, so that processes started later (a sweep's Ray workers) keep oneDNN's default. oneDNN reads the variable
    when first used, so the cap takes effect in a process that ran no convolution before, such as `features extract`.
    """
    if ONEDNN_CACHE_ENV in os.environ:
        yield
        return
    os.environ[ONEDNN_CACHE_ENV] = EXTRACTION_ONEDNN_CACHE
    try:
        yield
    finally:
        os.environ.pop(ONEDNN_CACHE_ENV, None)


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
