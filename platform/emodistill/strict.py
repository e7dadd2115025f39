"""The pydantic settings of what emodistill reads: configs (a bad key named, every float finite, every integer an
integer as written) and the files it wrote itself (strict types too: a file is read back as it was written, never
coerced)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, Strict

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
FROZEN_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
WRITTEN_FILE = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

# A config's integers are taken as written: `true`, `2.0` or "2" is refused, not read as 1 or 2.
Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
# A seed every generator takes (numpy's legacy ones stop at 2^32), with room for the offsets derived seeds add.
SEED_LIMIT = 2**32
Seed = Annotated[int, Strict(), Field(ge=0, lt=SEED_LIMIT)]
