"""The pydantic settings of what emodistill reads: configs (a bad key named, every float finite, every integer an
integer as written) and the files it wrote itself (strict types too: a file is read back as it was written, never
coerced)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, Strict

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
FROZEN_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
WRITTEN_FILE = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

# A config's integers are taken as written: `true`, `2.0` or "2" is refused, not read as 1 or 2; and bounded by the
# largest integer a float64 (JSON, MLflow's params) holds exactly, so no count overflows numpy's or torch's int64.
INT_LIMIT = 2**53 - 1


def _bounded(value: int) -> int:
    if abs(value) > INT_LIMIT:
        raise ValueError(f"out of range: an integer here must lie within ±{INT_LIMIT} (2^53 - 1)")
    return value


# A validator, not Field(le=...): a field's own Field(ge=0) would replace a bound set here.
Int = Annotated[int, Strict(), AfterValidator(_bounded)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
# A seed every generator takes (numpy's legacy ones stop at 2^32), with room for the offsets derived seeds add.
SEED_LIMIT = 2**32
Seed = Annotated[int, Strict(), Field(ge=0, lt=SEED_LIMIT)]
