"""Locations that are a local folder or an object-storage URI (`s3://bucket/sweeps`, `gs://bucket/sweeps`).

Everything the project keeps under a sweep's storage goes through pyarrow.fs, the layer Ray Tune resolves the
same location with, so a URI never meets pathlib. Credentials and endpoints come from the environment as pyarrow
reads them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from emodistill.errors import ConfigError
from emodistill.files import MAX_JSON_BYTES, write_text_atomic


def is_uri(location: str | Path) -> bool:
    """True for `scheme://...` (object storage, file://); False for plain paths."""
    return isinstance(location, str) and "://" in location


def resolve(location: str | Path) -> str:
    """One spelling of a location for Tune, sweep.json and the CLI: a URI as given, a local path made absolute."""
    if is_uri(location):
        return str(location)
    return str(Path(location).expanduser().resolve())


def check_writable(location: str | Path) -> None:
    """Raise naming `location` when it is a local folder that cannot be made or written: a file in its way, or a
    read-only or forbidden folder (checked before a cluster starts; object storage reports its own errors)."""
    if is_uri(location):
        return
    path = Path(resolve(location))
    existing = next(p for p in (path, *path.parents) if p.exists())
    where = f"{path}: {existing}" if existing != path else str(path)
    if not existing.is_dir():
        raise ConfigError(f"{where} is a file where a folder is expected: remove it or choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY else "no write permission"
        raise ConfigError(f"{where} cannot be written ({why}): choose a writable folder")


def join(location: str, *parts: str) -> str:
    """`location/part/...`: inside a URI's path (its query, such as `?endpoint_override=`, kept), else a Path join."""
    if not is_uri(location):
        return str(Path(location, *parts))
    scheme, bucket, path, query, fragment = urlsplit(location)
    return urlunsplit((scheme, bucket, posixpath.join(path or "/", *parts), query, fragment))


def filesystem(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem that holds `location`, and the path on it (as Ray Tune resolves a storage path)."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), resolve(location)
    try:
        return pafs.FileSystem.from_uri(str(location))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"{location}: not a location pyarrow.fs can open ({exc})") from None
    except OSError as exc:  # e.g. no route to the endpoint while looking up the bucket's region
        raise ConfigError(f"{location}: cannot reach it ({exc}); endpoints and credentials are read from the "
                          "environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, ...)"
                          ) from None


def exists(location: str) -> bool:
    """True if a file or folder is at `location`."""
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_text(location: str, *, missing: str, limit: int = MAX_JSON_BYTES) -> str:
    """The text file at `location`, of at most `limit` bytes (read no further); a missing, larger or undecodable one
    raises ConfigError naming it (`missing`: what was expected)."""
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"{location}: {missing}") from None
    if len(data) > limit:
        raise ConfigError(f"{location}: larger than the {limit} bytes a file emodistill writes here holds")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{location}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def write_text(location: str, text: str) -> str:
    """Write a text file whole: by rename in a local folder, as one object upload in object storage."""
    if not is_uri(location):
        write_text_atomic(location, text)
        return location
    fs, path = filesystem(location)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())
    return location


@contextmanager
def local_copy(location: str) -> Iterator[Path]:
    """The folder at `location` on local disk: the folder itself, or a temporary download of it."""
    if not is_uri(location):
        yield Path(location)
        return
    fs, path = filesystem(location)
    with tempfile.TemporaryDirectory(prefix="emodistill-download-") as local:
        pafs.copy_files(path, local, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        yield Path(local)


@contextmanager
def staged_folder(location: str) -> Iterator[Path]:
    """A local folder to fill for `location`: the folder itself, or a temporary one uploaded when the block ends
    without error."""
    if not is_uri(location):
        Path(location).mkdir(parents=True, exist_ok=True)
        yield Path(location)
        return
    fs, path = filesystem(location)
    with tempfile.TemporaryDirectory(prefix="emodistill-upload-") as local:
        yield Path(local)
        pafs.copy_files(local, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
