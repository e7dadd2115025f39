"""The pydantic settings of what emodistill reads: configs (a bad key named, every float finite) and the files it
wrote itself (strict types too: a file is read back as it was written, never coerced)."""

from __future__ import annotations

from pydantic import ConfigDict

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
FROZEN_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
WRITTEN_FILE = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
