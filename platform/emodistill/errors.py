"""Errors that carry a one-line reason for the user (the CLI prints them without a traceback), and the folding of
other libraries' multi-line messages into such a line."""

from __future__ import annotations

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


def field_problems(exc: Any, section: str = "") -> str:
    """A pydantic ValidationError as one line, `field: problem` per error, the fields dotted under `section`."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in ([section] if section else []) + list(error["loc"]))
        message = one_line(error["msg"]).removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
