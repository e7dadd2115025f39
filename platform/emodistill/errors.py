"""Errors that carry a one-line reason for the user (the CLI prints them without a traceback), and the folding of
other libraries' multi-line messages into such a line."""

from __future__ import annotations

import errno
import re
from typing import Any


class EmodistillError(Exception):
    """Bad input or state that the user can fix; the message names the file/field and what was expected."""


class CorpusError(EmodistillError):
    """A corpus on disk is missing pieces or is malformed."""


class FeatureTableError(EmodistillError):
    """A feature table does not match the expected schema or metadata."""


class ConfigError(EmodistillError):
    """A config file or override is invalid."""


class TrainingDiverged(EmodistillError):
    """A loss became NaN or inf during training."""


class IntegrityError(EmodistillError):
    """A stored file does not match the digest recorded when it was written: it was changed since."""


def one_line(text: Any) -> str:
    """`text` with its line breaks and runs of blanks folded into single spaces (YAML errors span several lines)."""
    return " ".join(str(text).split())


def first_line(text: Any) -> str:
    """The first non-blank line of `text` (pyarrow's HDFS error lists every path it tried to load a JVM from)."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def error_message(error: dict[str, Any]) -> str:
    """One error of a pydantic ValidationError's `errors()` as one line, without the prefix of a validator's."""
    return one_line(error["msg"]).removeprefix("Value error, ")


def field_problems(exc: Any, section: str = "") -> str:
    """A pydantic ValidationError as one line, `field: problem` per error, the fields dotted under `section`."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in ([section] if section else []) + list(error["loc"]))
        message = error_message(error)
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


# What a user can do about the system errors that bad paths and full or read-only disks raise.
OS_ADVICE = {
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ENOSPC: "no space left on the device: free some space or choose a folder on another disk",
    errno.EDQUOT: "disk quota exceeded: free some space or choose a folder on another disk",
    errno.EACCES: "permission denied: check the path's owner and mode, or choose another path",
    errno.EPERM: "operation not permitted: check the path's owner and mode, or choose another path",
    errno.ENOTDIR: "a file stands where a folder is expected: remove it or choose another path",
    errno.EISDIR: "a folder stands where a file is expected: remove it or choose another path",
    errno.ENOENT: "no such file or folder: check the path",
    errno.EEXIST: "already exists: remove it or choose another path",
    errno.ENOTEMPTY: "the folder is not empty: remove it or choose another path",
    errno.ENAMETOOLONG: "the file name is too long: choose a shorter path",
    errno.ELOOP: "too many levels of symbolic links: check the path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
}
OUT_OF_MEMORY = re.compile(r"can't allocate memory|out of memory", re.IGNORECASE)  # torch's allocators' words
ALLOCATION = re.compile(r"tried to allocate [\d.]+ ?\w+", re.IGNORECASE)
ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")  # pyarrow's OSErrors carry the errno only in their message
SYMLINK_LOOP = re.compile(r"^Symlink loop from '(.*)'$")  # Path.resolve's RuntimeError before Python 3.13


def os_reason(exc: OSError) -> str:
    """What went wrong in an OSError and what to do, without the path."""
    code = exc.errno
    if code is None and (found := ERRNO_IN_TEXT.search(str(exc))):
        code = int(found.group(1))
    return OS_ADVICE.get(code) or one_line(exc.strerror or exc)


def os_problem(exc: OSError, path: Any = None) -> str:
    """An OSError as one line "PATH: what went wrong, what to do"; `path` stands in when the error names none."""
    where = exc.filename if exc.filename is not None else path
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{where}: {os_reason(exc)}" if where is not None else os_reason(exc)


def is_mlflow_error(exc: BaseException) -> bool:
    """Whether `exc` is one of MLflow's exceptions (told by module, so that MLflow need not be imported)."""
    return any(cls.__module__.startswith("mlflow") for cls in type(exc).__mro__)


def mlflow_problem(exc: Exception, uri: Any = None) -> str | None:
    """An exception of MLflow's (a bad tracking URI, a refused login) as one line naming `uri`; None for others."""
    if not is_mlflow_error(exc):
        return None
    message = one_line(getattr(exc, "message", exc))
    where = f"tracking store {uri}" if uri else "tracking store"
    return f"{where}: {message}: check --tracking-uri, $MLFLOW_TRACKING_URI and the server's credentials"


def external_problem(exc: BaseException, path: Any = None) -> str | None:
    """A user-fixable error of the system or of a library as one line; None for what must be an internal bug."""
    if isinstance(exc, OSError):
        return os_problem(exc, path)
    if isinstance(exc, RuntimeError) and (loop := SYMLINK_LOOP.match(str(exc))):
        return f"{loop.group(1)}: {OS_ADVICE[errno.ELOOP]}"
    if isinstance(exc, RecursionError):
        where = f"{path}: " if path is not None else "an input file: "
        return f"{where}nested too deeply (thousands of brackets?): check the JSON and YAML files given"
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and OUT_OF_MEMORY.search(str(exc))):
        # What no up-front check foresaw (torch's CPU and CUDA allocators raise RuntimeErrors).
        asked = ALLOCATION.search(str(exc))
        what = f" (it {asked.group(0).lower()})" if asked else ""
        return f"out of memory{what}: make the sizes in the config (model, batches, budgets) smaller or free memory"
    if isinstance(exc, Exception):
        return mlflow_problem(exc, path)
    return None
