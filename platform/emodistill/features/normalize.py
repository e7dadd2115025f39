"""Per-speaker feature normalisation, standard in emotion recognition: each speaker's frames standardised with that
speaker's mean and standard deviation per dimension, measured over all of the speaker's utterances (a test
speaker's too: its statistics need no label, only its speech)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pyarrow as pa

from emodistill.errors import FeatureTableError
from emodistill.features.schema import METADATA_KEY, validate_table

SPEAKER = "speaker"  # the `normalization` a normalised table's metadata records
MIN_STD = 1e-5  # a dimension that never varies for a speaker is centred, not divided by ~0
CHUNK = 1 << 18  # frames per block when accumulating statistics


def _frames(table: pa.Table, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames (F, D), offsets (N + 1,)) of a table's utterances, zero-copy where Arrow allows it."""
    column = table.column("features")
    chunk = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    values = chunk.flatten().flatten().to_numpy(zero_copy_only=False)  # flatten() honours a slice's offsets
    offsets = chunk.offsets.to_numpy().astype(np.int64)
    return values.reshape(-1, dim), offsets - offsets[0]


def _speaker_rows(table: pa.Table, source: str) -> list[str]:
    """Each utterance's speaker; every utterance must have one."""
    speakers = table.column("speaker").to_pylist()
    missing = [u for u, s in zip(table.column("utt_id").to_pylist(), speakers) if s is None]
    if missing:
        raise FeatureTableError(f"{source}: {len(missing)} utterance(s) have no speaker (first: {missing[0]}); "
                                "per-speaker normalisation needs a speaker on every utterance (or set "
                                "data.normalize to none / --normalize none)")
    return speakers


def speaker_statistics(tables: Iterable[tuple[pa.Table, str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Speaker -> (mean, std) per dimension (float32) over every frame of that speaker in the (table, source) pairs."""
    sums: dict[str, list] = {}
    for table, source in tables:
        meta = validate_table(table, source)
        frames, offsets = _frames(table, meta.dim)
        for speaker, start, end in zip(_speaker_rows(table, source), offsets[:-1], offsets[1:]):
            total = sums.setdefault(speaker, [0, np.zeros(meta.dim), np.zeros(meta.dim)])
            for block in range(start, end, CHUNK):
                x = frames[block:min(block + CHUNK, end)].astype(np.float64)
                total[0] += len(x)
                total[1] += x.sum(axis=0)
                total[2] += np.square(x).sum(axis=0)
    stats = {}
    for speaker, (n, s, ss) in sums.items():
        if n == 0:
            raise FeatureTableError(f"speaker {speaker!r} has no frames; per-speaker normalisation needs some")
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
        stats[speaker] = mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32)
    return stats


def normalize_by_speaker(table: pa.Table, stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                         source: str = "<table>") -> pa.Table:
    """The table with every utterance's frames standardised by its speaker's statistics (default: measured on this
    table), in the table's dtype; its metadata records `normalization: speaker`."""
    meta = validate_table(table, source)
    if meta.normalization is not None:
        raise FeatureTableError(f"{source}: already normalised ({meta.normalization}); normalise raw features once")
    stats = speaker_statistics([(table, source)]) if stats is None else stats
    frames, offsets = _frames(table, meta.dim)
    speakers = _speaker_rows(table, source)
    absent = sorted(set(speakers) - set(stats))
    if absent:
        raise FeatureTableError(f"{source}: no statistics for speaker(s) {absent[:5]}")
    out = np.empty(frames.shape, dtype=frames.dtype)
    for speaker, start, end in zip(speakers, offsets[:-1], offsets[1:]):
        mean, std = stats[speaker]
        out[start:end] = (frames[start:end] - mean) / std
    if not np.isfinite(out).all():
        raise FeatureTableError(f"{source}: normalised frames overflow {meta.dtype} (extract the features as "
                                "float32)")
    normalized = replace(meta, normalization=SPEAKER)
    frame_type = pa.list_(table.schema.field("features").type.value_type.value_type, meta.dim)
    frames_array = pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), type=frame_type)
    features = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), frames_array,
                                        type=table.schema.field("features").type)
    index = table.schema.get_field_index("features")
    result = table.set_column(index, table.schema.field("features"), features)
    return result.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: normalized.to_json()})


def normalize_tables(tables: dict[str, pa.Table], sources: dict[str, str]) -> dict[str, pa.Table]:
    """Name -> the table normalised by speaker, with every speaker's statistics measured over all the tables (a
    speaker in two of them is normalised the same way in both)."""
    stats = speaker_statistics((table, sources[name]) for name, table in tables.items())
    return {name: normalize_by_speaker(table, stats, sources[name]) for name, table in tables.items()}

