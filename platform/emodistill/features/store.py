"""Feature tables on disk: Arrow IPC files, written atomically, read memory-mapped, fingerprinted.

A feature directory holds `train.arrow`, `dev.arrow`, `test.arrow` and `features.json`, an index
with the shared metadata and, per split, counts, frames, bytes and the table fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from emodistill.corpora.records import Utterance
from emodistill.errors import EmodistillError, FeatureTableError
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import DTYPES, FeatureMeta, feature_schema, validate_table
from emodistill.files import atomic_path, check_free_space, read_json, write_text_atomic

SPLITS = ("train", "dev", "test")
INDEX_NAME = "features.json"
RECORD_COLUMNS = ("utt_id", "speaker", "gender", "session", "label")
SUMMARY_KEYS = ("file", "utterances", "counts", "frames", "seconds", "bytes", "created", "fingerprint")
FEATURE_FILES = frozenset([f"{split}.arrow" for split in SPLITS] + [INDEX_NAME])


def _record_fields(record: Utterance | dict) -> dict:
    """The per-utterance columns of a record (an Utterance, or a dict such as a synthetic sample's)."""
    if isinstance(record, Utterance):
        record = asdict(record)
    if "utt_id" not in record or "label" not in record:
        raise FeatureTableError(f"record {record!r} lacks 'utt_id' or 'label'")
    return {c: record.get(c) for c in RECORD_COLUMNS}


def build_table(items: Iterable[tuple[Utterance | dict, np.ndarray]], meta: FeatureMeta) -> pa.Table:
    """A feature table from (record, frames (T, D)) pairs, frames cast to `meta.dtype`."""
    if meta.dtype not in DTYPES:
        raise FeatureTableError(f"dtype {meta.dtype!r} is not one of {sorted(DTYPES)}")
    columns = {c: [] for c in RECORD_COLUMNS}
    blocks, lengths = [], []
    for record, frames in items:
        fields = _record_fields(record)
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != meta.dim:
            raise FeatureTableError(f"{fields['utt_id']}: frames have shape {frames.shape}, expected (T, {meta.dim})")
        if fields["label"] not in meta.labels:
            raise FeatureTableError(f"{fields['utt_id']}: label {fields['label']!r} "
                                    f"is not in the label set {meta.labels}")
        for name, value in fields.items():
            columns[name].append(value)
        blocks.append(frames.astype(meta.dtype, copy=False))
        lengths.append(len(frames))
    schema = feature_schema(meta)
    values = np.concatenate(blocks) if blocks else np.zeros((0, meta.dim), meta.dtype)
    frame_type = schema.field("features").type.value_type
    frames_array = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), type=frame_type)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    features = pa.ListArray.from_arrays(offsets, frames_array, type=schema.field("features").type)
    arrays = [pa.array(columns[c], schema.field(c).type) for c in RECORD_COLUMNS]
    arrays += [pa.array(lengths, pa.int32()), features]
    return pa.Table.from_arrays(arrays, schema=schema)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Validate `table` and write it as an Arrow IPC file, atomically."""
    return write_tables([table], table.schema, path)


def write_tables(tables: Iterable[pa.Table], schema: pa.Schema, path: str | Path,
                 expected_bytes: int | None = None) -> Path:
    """Write consecutive tables of one schema as a single Arrow IPC file, validating each, atomically.

    Only one table is held at a time, so a caller that produces them lazily writes files of any size; with
    `expected_bytes`, a disk without room for them fails before the first table is made.
    """
    path = Path(path)
    if path.is_dir():
        raise EmodistillError(f"{path}: is a folder (expected the name of the Arrow file to write)")
    if expected_bytes is not None:
        check_free_space(path, expected_bytes)
    validate_table(schema.empty_table(), str(path))
    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
            for table in tables:
                validate_table(table, str(path))
                if not table.schema.equals(schema, check_metadata=True):
                    raise FeatureTableError(f"{path}: a batch's schema differs from the file's:\n"
                                            f"{table.schema}\nexpected\n{schema}")
                writer.write_table(table)
    return path


def _open_table(path: Path) -> tuple[pa.Table, FeatureMeta]:
    """Memory-map and validate a feature table; also return its metadata."""
    if not path.is_file():
        raise FeatureTableError(f"{path}: feature table not found")
    try:
        table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise FeatureTableError(f"{path}: not a readable Arrow IPC file ({exc})") from None
    return table, validate_table(table, str(path))


def read_table(path: str | Path) -> pa.Table:
    """Memory-map a feature table (no copy of the frames) and validate its schema."""
    return _open_table(Path(path))[0]


def fingerprint(table: pa.Table) -> str:
    """16 hex chars of sha256 over the content and metadata (ignoring `created`), chunking-independent."""
    meta = asdict(validate_table(table, "<table>"))
    meta.pop("created")
    digest = hashlib.sha256()
    digest.update(json.dumps(meta, sort_keys=True).encode())
    digest.update(table.schema.remove_metadata().to_string().encode())
    for name in RECORD_COLUMNS + ("n_frames",):
        digest.update(json.dumps(table.column(name).to_pylist()).encode())
    for chunk in table.column("features").chunks:
        # flatten() honours slicing, so only the frames this table refers to are hashed.
        values = chunk.flatten().flatten().to_numpy(zero_copy_only=False)
        digest.update(memoryview(np.ascontiguousarray(values)).cast("B"))
    return digest.hexdigest()[:16]


def split_summary(table: pa.Table, path: str | Path, seconds: float | None = None) -> dict:
    """Index entry of one split: utterances per label, frames, audio seconds, bytes, fingerprint."""
    meta = validate_table(table, str(path))
    counts = Counter(table.column("label").to_pylist())
    return {
        "file": Path(path).name,
        "utterances": table.num_rows,
        "counts": {label: counts.get(label, 0) for label in meta.labels},
        "frames": int(pc.sum(table.column("n_frames")).as_py() or 0),
        "seconds": seconds,
        "bytes": Path(path).stat().st_size,
        "created": meta.created,
        "fingerprint": fingerprint(table),
    }


def write_index(directory: str | Path, meta: FeatureMeta, splits: dict[str, dict]) -> dict:
    """Write `features.json` atomically; its fingerprint combines the split fingerprints."""
    shared = asdict(meta)
    shared.pop("split")
    combined = hashlib.sha256(json.dumps({s: splits[s]["fingerprint"] for s in sorted(splits)}).encode())
    index = {"meta": shared, "splits": splits, "fingerprint": combined.hexdigest()[:16]}
    write_text_atomic(Path(directory) / INDEX_NAME, json.dumps(index, indent=2) + "\n")
    return index


def check_replaceable(directory: str | Path) -> None:
    """Refuse to replace `directory` unless it is absent, empty or holds only a feature directory's files."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FeatureTableError(f"{directory}: not a folder (expected a feature directory to write or replace)")
    others = sorted(p.name for p in directory.iterdir() if p.name not in FEATURE_FILES)
    if others:
        # The whole folder is replaced: anything else in it would be lost.
        raise FeatureTableError(f"{directory}: holds files other than a feature directory's ({', '.join(others[:5])}"
                                f"{', ...' if len(others) > 5 else ''}); choose a new or empty folder")


def read_index(directory: str | Path) -> dict:
    """The parsed `features.json` of a feature directory."""
    directory = Path(directory)
    path = directory / INDEX_NAME
    if not directory.is_dir():
        raise FeatureTableError(f"{directory}: feature directory not found")
    index = read_json(path, missing="index not found (run `emodistill features extract` to completion)",
                      error=FeatureTableError)
    missing = [k for k in ("meta", "splits", "fingerprint") if k not in index]
    missing += [f"splits.{s}.{k}" for s, entry in index.get("splits", {}).items() for k in SUMMARY_KEYS
                if k not in entry]
    if missing:
        raise FeatureTableError(f"{path}: lacks key(s) {missing}")
    return index


def dataset_fingerprint(directory: str | Path) -> str:
    """The fingerprint of a whole feature directory, as recorded in its index."""
    return read_index(directory)["fingerprint"]


def open_splits(directory: str | Path) -> dict[str, pa.Table]:
    """Memory-map the train/dev/test tables, checking each against the index written with it."""
    directory = Path(directory)
    index = read_index(directory)
    tables = {}
    for split in SPLITS:
        path = directory / f"{split}.arrow"
        entry = index["splits"].get(split)
        if entry is None:
            raise FeatureTableError(f"{directory / INDEX_NAME}: split '{split}' missing from the index")
        if not path.is_file():
            raise FeatureTableError(f"{path}: split '{split}' missing from feature directory {directory}")
        table, meta = _open_table(path)
        # A re-extraction interrupted after some splits leaves tables the index does not describe.
        if meta.created != entry["created"] or path.stat().st_size != entry["bytes"]:
            raise FeatureTableError(f"{path}: does not match {INDEX_NAME} (interrupted extraction?); extract again")
        tables[split] = table
    return tables


def load_splits(directory: str | Path) -> dict[str, FeatureSet]:
    """The train/dev/test splits as zero-copy FeatureSets."""
    directory = Path(directory)
    return {split: FeatureSet.from_table(table, str(directory / f"{split}.arrow"))
            for split, table in open_splits(directory).items()}
