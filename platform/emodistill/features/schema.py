"""The Arrow schema of feature tables (DESIGN.md) and its validation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from pydantic import with_config

from emodistill import __version__
from emodistill.errors import FeatureTableError
from emodistill.files import parse_json
from emodistill.strict import WRITTEN_FILE

METADATA_KEY = b"emodistill"
DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
FINITE_BLOCK = 1 << 22  # values summed at a time when checking that frames are finite (16 MiB of float32)
COLUMNS = ("utt_id", "speaker", "gender", "session", "label", "n_frames", "features")


# Read strictly (files.parse_json): a field of another type, or one this version does not know, is refused by name.
@with_config(WRITTEN_FILE)
@dataclass
class FeatureMeta:
    """Schema metadata stored as JSON under the key `emodistill`."""

    corpus: str
    upstream: str
    upstream_config: dict
    layer: int | str | None
    sample_rate: int
    frame_rate: float
    dim: int
    labels: list[str]
    dtype: str = "float32"
    split: str | None = None
    # "speaker" when every utterance's frames were standardised by its speaker's statistics (features/normalize.py)
    normalization: str | None = None
    # How a distilled set was made from its generator (method, budget, candidates, seed, generator digest, ...)
    provenance: dict | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    package_version: str = __version__

    def to_json(self) -> bytes:
        """Serialise for the schema metadata."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, source: str) -> FeatureMeta:
        """Parse the metadata, naming the missing, unexpected or mistyped key on failure."""
        meta = parse_json(raw, cls, f"{source}: metadata 'emodistill'", error=FeatureTableError)
        if meta.dtype not in DTYPES:
            raise FeatureTableError(f"{source}: metadata 'emodistill.dtype' is {meta.dtype!r}, "
                                    f"expected one of {sorted(DTYPES)}")
        if len(set(meta.labels)) != len(meta.labels) or not meta.labels:
            raise FeatureTableError(f"{source}: metadata 'emodistill.labels' is {meta.labels}, expected distinct "
                                    "label names")
        return meta


def feature_schema(meta: FeatureMeta) -> pa.Schema:
    """The Arrow schema for a table of `meta.dim`-dimensional frames."""
    frame = pa.list_(DTYPES[meta.dtype], meta.dim)
    return pa.schema(
        [
            pa.field("utt_id", pa.string(), nullable=False),
            pa.field("speaker", pa.string()),
            pa.field("gender", pa.string()),
            pa.field("session", pa.int32()),
            pa.field("label", pa.string(), nullable=False),
            pa.field("n_frames", pa.int32(), nullable=False),
            pa.field("features", pa.list_(frame), nullable=False),
        ],
        metadata={METADATA_KEY: meta.to_json()},
    )


def validate_table(table: pa.Table, source: str) -> FeatureMeta:
    """Check a table against DESIGN's schema; return its metadata or raise naming what differs."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise FeatureTableError(f"{source}: schema metadata lacks the key 'emodistill'")
    meta = FeatureMeta.from_json(raw, source)
    expected = feature_schema(meta)
    names = table.schema.names
    if tuple(names) != COLUMNS:
        raise FeatureTableError(f"{source}: columns are {names}, expected {list(COLUMNS)}")
    for want in expected:
        got = table.schema.field(want.name)
        if not got.type.equals(want.type):
            raise FeatureTableError(f"{source}: column '{want.name}' has type {got.type}, expected {want.type}")
    labels = table.column("label")
    unknown = set(labels.unique().to_pylist()) - set(meta.labels)
    if unknown:
        raise FeatureTableError(f"{source}: column 'label' has {sorted(unknown)} not in the label set {meta.labels}")
    return meta


def check_finite(table: pa.Table, source: str) -> None:
    """Raise naming the first utterance of `table` whose frames hold a NaN or an infinity (checked where a table
    is opened: such a frame surfaces only later, as a NaN loss in training that names no utterance)."""
    row = 0
    for chunk in table.column("features").chunks:
        values = chunk.flatten().flatten().to_numpy(zero_copy_only=False)
        # A float64 sum of float16/32 values cannot overflow, and is NaN or infinite exactly when one of them is.
        for start in range(0, values.size, FINITE_BLOCK):
            block = values[start:start + FINITE_BLOCK]
            if not np.isfinite(block.sum(dtype=np.float64)):
                first = start + int(np.flatnonzero(~np.isfinite(block))[0])
                frame = first // chunk.type.value_type.list_size
                offsets = chunk.offsets.to_numpy()
                at = int(np.searchsorted(offsets - offsets[0], frame, side="right")) - 1
                utt = table.column("utt_id")[row + at].as_py()
                raise FeatureTableError(f"{source}: utterance {utt!r} has a NaN or infinite value in frame "
                                        f"{frame - int(offsets[at] - offsets[0])}: extract the features again, "
                                        "or drop the utterance from the corpus")
        row += len(chunk)
