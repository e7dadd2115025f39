"""Locations that are a local folder or an object-storage URI (`s3://bucket/sweeps`, `gs://bucket/sweeps`).

Everything the project keeps under a sweep's storage goes through pyarrow.fs, the layer Ray Tune resolves the
same location with, so a URI never meets pathlib. Credentials and endpoints come from the environment as pyarrow
reads them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...).
"""

from __future__ import annotations

import errno
import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from emodistill.errors import OS_ADVICE, ConfigError, first_line
from emodistill.files import MAX_JSON_BYTES, parse_json, write_text_atomic

T = TypeVar("T")


def is_uri(location: str | Path) -> bool:
    """True for `scheme://...` (object storage, file://); False for plain paths."""
    return isinstance(location, str) and "://" in location


def resolve(location: str | Path) -> str:
    """One spelling of a location for Tune, sweep.json and the CLI: a URI as given, a local path (`file://` URIs
    too: local folders are made and written atomically) made absolute."""
    if isinstance(location, str) and location.startswith("file://"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{location}: a file:// URI names a folder on this machine (file:///path), not on "
                              f"{parts.netloc}")
        if "?" in location or "#" in location:  # a query or fragment would be dropped (a local folder takes none)
            raise ConfigError(f"{location}: a file:// URI takes no query or fragment (file:///path); a '?' or '#' in "
                              "a folder's name is written %3F or %23")
        location = unquote(parts.path)
        if not location:
            raise ConfigError("file://: names no folder (file:///path)")
    if is_uri(location):
        parts = urlsplit(location)
        if not (parts.netloc or parts.path.strip("/")):
            raise ConfigError(f"{location}: names no bucket or folder (e.g. {parts.scheme}://bucket/prefix)")
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
        raise ConfigError(f"{where}: {OS_ADVICE[errno.ENOTDIR]}")
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
        raise ConfigError(f"{where}: {OS_ADVICE[code]}")


def join(location: str, *parts: str) -> str:
    """`location/part/...`: inside a URI's path (its query, such as `?endpoint_override=`, kept), else a Path join."""
    if not is_uri(location):
        return str(Path(location, *parts))
    scheme, bucket, path, query, fragment = urlsplit(location)
    return urlunsplit((scheme, bucket, posixpath.join(path or "/", *parts), query, fragment))


# An endpoint that accepts connections and never answers would otherwise cost minutes per call (the AWS SDK's
# defaults retry a stalled request many times): a few seconds to connect, a request that transfers nothing for
# REQUEST_TIMEOUT_S fails, and one retry.
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
S3_ATTEMPTS = 2
UNREACHABLE_HINT = ("endpoints and credentials are read from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                    "GOOGLE_APPLICATION_CREDENTIALS, ...)")


def filesystem(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem that holds `location`, and the path on it (as Ray Tune resolves a storage path); an
    S3 one gives up on an endpoint that does not answer within seconds."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), resolve(location)
    try:
        fs, path = pafs.FileSystem.from_uri(str(location))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"{location}: not a location pyarrow.fs can open ({exc})") from None
    except OSError as exc:  # e.g. no route to the endpoint while looking up the bucket's region, no JVM for HDFS
        raise ConfigError(f"{location}: cannot reach it ({first_line(exc)}); {UNREACHABLE_HINT}") from None
    return (_bounded(fs) if isinstance(fs, pafs.S3FileSystem) else fs), path


def _bounded(fs: pafs.S3FileSystem) -> pafs.S3FileSystem:
    """The same S3 client (the options the URI and the environment gave) with bounded timeouts and retries."""
    options = fs.__reduce__()[1][0]  # how pyarrow pickles it: every option it was built with
    options.update(connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
                   retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS))
    if not options.get("proxy_options", {}).get("host"):
        options.pop("proxy_options", None)
    return pafs.S3FileSystem(**options)


@contextmanager
def reaching(location: str) -> Iterator[None]:
    """For the block, a storage URI that cannot be reached is a ConfigError naming it (a local path's OSError is
    left as it is: it says what went wrong itself)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        if not is_uri(location):
            raise
        raise ConfigError(f"{location}: cannot reach it ({first_line(exc)}); {UNREACHABLE_HINT}") from None


def check_reachable(location: str) -> None:
    """Fail within seconds, naming `location`, when its object store does not answer (before a sweep starts Ray)."""
    if is_uri(location):
        exists(location)


def for_tune(location: str) -> dict:
    """Ray Tune's storage arguments for `location`: a URI's path on the bounded filesystem `filesystem` gives it (Tune
    would otherwise build an S3 client with the SDK's minutes of retries), a local folder as it is."""
    if not is_uri(location):
        return {"storage_path": location}
    fs, path = filesystem(location)
    return {"storage_path": path, "storage_filesystem": fs}


def exists(location: str) -> bool:
    """True if a file or folder is at `location`."""
    fs, path = filesystem(location)
    with reaching(location):
        return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_json(location: str, schema: type[T], *, missing: str) -> T:
    """The JSON file at `location` as `schema` (files.parse_json), read no further than the size bound; a missing,
    larger or malformed one raises ConfigError naming it (`missing`: what was expected)."""
    fs, path = filesystem(location)
    try:
        with reaching(location), fs.open_input_stream(path) as stream:
            data = stream.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{location}: {missing}") from None
    return parse_json(data, schema, location)


def write_text(location: str, text: str) -> str:
    """Write a text file whole: by rename in a local folder, as one object upload in object storage."""
    if not is_uri(location):
        write_text_atomic(location, text)
        return location
    fs, path = filesystem(location)
    with reaching(location), fs.open_output_stream(path) as stream:
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
        with reaching(location):
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
        with reaching(location):
            pafs.copy_files(local, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
