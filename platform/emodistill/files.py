"""Files on disk: atomic writes (build under a temporary name beside the target, then rename) and checked JSON reads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emodistill.errors import ConfigError, EmodistillError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside `target`; on success it replaces `target`, on error it is removed.

    The caller creates a file or a directory at the yielded path. Readers see either the old
    target or the complete new one, never a half-written one; a failure leaves the old intact.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():
            # os.replace cannot overwrite a non-empty directory: move the old one aside first.
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        # Named after the target the user gave, not the temporary name it is built under (pyarrow names none).
        if exc.filename is None:
            if exc.errno is not None:  # without an errno, str(exc) would show neither
                exc.filename = str(target)
        elif Path(exc.filename).is_relative_to(tmp):
            exc.filename = str(target / Path(exc.filename).relative_to(tmp))
        raise
    finally:
        _remove(tmp)


def check_free_space(target: str | Path, needed: int) -> None:
    """Raise EmodistillError unless the file system that is to hold `target` has `needed` bytes free."""
    target = Path(target).absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise EmodistillError(f"{target}: needs about {needed / 2**30:.2f} GiB, "
                              f"but {existing} has {free / 2**30:.2f} GiB free")


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def read_json(path: str | Path, *, missing: str, error: type[EmodistillError] = ConfigError) -> Any:
    """Parse a JSON file; a missing or unreadable one raises `error` naming the path (`missing`: what was expected)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: not readable JSON ({exc})") from None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
