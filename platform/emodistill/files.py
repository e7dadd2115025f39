"""Files on disk: atomic writes (build under a temporary name beside the target, then rename) and JSON reads checked
against a typed model (size bounded, parsed and validated in one pass)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from emodistill.errors import ConfigError, EmodistillError, field_problems, os_reason

T = TypeVar("T")
# Far above any JSON emodistill writes (a results.json of thousands of predictions is a few MiB): a bigger file is
# not one of its own, and is refused before it is read into memory.
MAX_JSON_BYTES = 64 * 2**20


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # the shell's status for a process ended by the signal: 143 for SIGTERM


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM, which by default ends the process on the spot, unwinds it like Ctrl+C instead (exit 143), so that
    the `finally` blocks removing temporary files run. Only where the process takes SIGTERM's default action, from
    its main thread (the only one that may set a handler): a handler someone else set (Ray's, in its workers) stays."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside `target`; on success it replaces `target`, on error it is removed.

    The caller creates a file or a directory at the yielded path. Readers see either the old
    target or the complete new one, never a half-written one; a failure, Ctrl+C or SIGTERM (which then ends the
    process with status 143) leaves the old intact and removes the temporary one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    with sigterm_unwinds():
        try:
            with errors_named_after(target, tmp):
                yield tmp
                if tmp.is_dir() and target.is_dir():
                    # os.replace cannot overwrite a non-empty directory: move the old one aside first.
                    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
                    os.replace(target, old)
                    os.replace(tmp, target)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, target)
        finally:
            _remove(tmp)


@contextmanager
def errors_named_after(target: str | Path, built_at: str | Path | None = None) -> Iterator[None]:
    """Name an OSError raised inside after `target`, the path the user asked for, when it names no file (pyarrow's and
    a full disk's name none) or one under `built_at`, the temporary path `target` is built at."""
    target = Path(target)
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            if exc.errno is not None:  # without an errno, str(exc) would show neither
                exc.filename = str(target)
        elif built_at is not None and Path(exc.filename).is_relative_to(built_at):
            inside = Path(exc.filename).relative_to(built_at)
            exc.filename = str(target / inside if inside.parts else target)
        raise


def check_replaceable(directory: str | Path, own: Collection[str], what: str,
                      error: type[EmodistillError] = EmodistillError) -> None:
    """Refuse to replace `directory` whole unless it is absent, empty or holds only `own` names (those of `what`)."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise error(f"{directory}: not a folder (expected {what} to write or replace)")
    others = sorted(p.name for p in directory.iterdir() if p.name not in own)
    if others:
        # The whole folder is replaced: anything else in it would be lost.
        raise error(f"{directory}: holds files other than {what}'s ({', '.join(others[:5])}"
                    f"{', ...' if len(others) > 5 else ''}); choose a new or empty folder")


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


@cache
def _adapter(schema: type) -> TypeAdapter:
    return TypeAdapter(schema)


def parse_json(text: str | bytes, schema: type[T], source: str, *, error: type[EmodistillError] = ConfigError) -> T:
    """`text` parsed as JSON and validated as `schema` (a pydantic model or a dataclass) in one pass; bad JSON, a
    nesting deeper than the parser's limit or a field of the wrong type or shape raises `error` naming `source` and
    the field."""
    if len(text) > MAX_JSON_BYTES:
        raise error(f"{source}: {len(text)} bytes, more than the {MAX_JSON_BYTES} a file emodistill writes here holds")
    try:
        return _adapter(schema).validate_json(text)
    except ValidationError as exc:
        raise error(f"{source}: {field_problems(exc)}") from None


def validate(data: object, schema: type[T], source: str, *, error: type[EmodistillError] = ConfigError) -> T:
    """`data` (parsed YAML, a mapping of settings) validated as `schema`; a field of the wrong type or shape raises
    `error` naming `source` and the field."""
    try:
        return _adapter(schema).validate_python(data)
    except ValidationError as exc:
        raise error(f"{source}: {field_problems(exc)}") from None


def read_bounded(path: str | Path, limit: int, what: str, *, missing: str | None = None,
                 error: type[EmodistillError] = ConfigError) -> bytes:
    """The bytes of the regular file at `path` (`what`, e.g. "a YAML config"), of at most `limit`; a bigger one, one
    that is not a regular file (a pipe or a device would be read forever) or one that cannot be read raises `error`
    naming the path (a missing one with `missing`, when given)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise error(f"{path}: not a regular file (expected {what})")
        size = path.stat().st_size
        if size > limit:
            raise error(f"{path}: {size} bytes, more than the {limit} {what} may hold")
        return path.read_bytes()
    except OSError as exc:
        if missing is not None and isinstance(exc, FileNotFoundError):
            raise error(f"{path}: {missing}") from None
        raise error(f"{path}: cannot be read ({os_reason(exc)})") from None


def read_json(path: str | Path, schema: type[T], *, missing: str, error: type[EmodistillError] = ConfigError) -> T:
    """The JSON file at `path` as `schema` (see parse_json); a missing, unreadable or oversized one raises `error`
    naming the path (`missing`: what was expected)."""
    data = read_bounded(path, MAX_JSON_BYTES, "a file emodistill writes", missing=missing, error=error)
    return parse_json(data, schema, str(path), error=error)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
