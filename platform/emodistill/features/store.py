"""Feature tables on disk: Arrow IPC files, written atomically, read memory-mapped, fingerprinted.

A feature directory holds `features.json`, an index with the shared metadata and, per table, counts, frames,
bytes and the table fingerprint, and either
- `corpus.arrow`, every utterance of a corpus with sessions, and in the index its sessions and how the folds cut
  them (`folds`): a run chooses its fold when it loads the features (test: that session; train/dev: the seeded
  80/20 cut of the others, as corpora/folds.py defines it), or
- `train.arrow`, `dev.arrow`, `test.arrow`: splits fixed when extracted (a manifest's `split` column, or a
  directory extracted before folds were chosen at load time), which take no fold.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from pydantic import BaseModel, Field, NonNegativeFloat, NonNegativeInt, field_validator

from emodistill.corpora.folds import fold_index
from emodistill.corpora.records import Utterance
from emodistill.errors import ConfigError, EmodistillError, FeatureTableError, IntegrityError, one_line
from emodistill.features.dataset import FeatureSet
from emodistill.features.normalize import normalize_tables
from emodistill.features.schema import DTYPES, FeatureMeta, check_finite, feature_schema, validate_table
from emodistill.features.splits import DataConfig, data_fingerprint
from emodistill.files import atomic_path, check_free_space, read_json, validate, write_text_atomic
from emodistill.strict import WRITTEN_FILE

SPLITS = ("train", "dev", "test")
CORPUS = "corpus"  # the whole-corpus table of a directory with folds
INDEX_NAME = "features.json"
RECORD_COLUMNS = ("utt_id", "speaker", "gender", "session", "label")
FEATURE_FILES = frozenset([f"{name}.arrow" for name in (*SPLITS, CORPUS)] + [INDEX_NAME])


class _Strict(BaseModel):
    model_config = WRITTEN_FILE


class TableSummary(_Strict):
    """One table's entry in features.json (split_summary)."""

    file: str
    utterances: NonNegativeInt
    counts: dict[str, NonNegativeInt]
    frames: NonNegativeInt
    seconds: NonNegativeFloat | None
    bytes: NonNegativeInt
    created: str
    fingerprint: str


class Folds(_Strict):
    """How the folds of a whole-corpus table cut its sessions."""

    sessions: dict[str, NonNegativeInt] = Field(min_length=1)  # session number -> utterances
    dev_fraction: float = Field(gt=0, lt=1)
    seed: int

    @field_validator("sessions")
    @classmethod
    def _numbered(cls, sessions: dict[str, int]) -> dict[str, int]:
        bad = [name for name in sessions if not re.fullmatch(r"[0-9]{1,9}", name)]
        if bad:
            raise ValueError(f"sessions {bad} are not session numbers")
        return sessions


class FeatureIndex(_Strict):
    """features.json (write_index): fixed `splits`, or one whole-corpus table under `tables` with its `folds`."""

    meta: FeatureMeta
    splits: dict[str, TableSummary] | None = None
    tables: dict[str, TableSummary] | None = None
    folds: Folds | None = None
    fingerprint: str


def record_fields(record: Utterance | dict) -> dict:
    """The per-utterance columns of a record (an Utterance, or a dict such as a synthetic sample's)."""
    if isinstance(record, Utterance):
        record = asdict(record)
    if "utt_id" not in record or "label" not in record:
        raise FeatureTableError(f"record {record!r} lacks 'utt_id' or 'label'")
    return {c: record.get(c) for c in RECORD_COLUMNS}


def checked_frames(fields: dict, frames: np.ndarray, meta: FeatureMeta) -> np.ndarray:
    """An utterance's frames (T, D) in `meta.dtype`, once its shape and label fit `meta` (raises naming it)."""
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[1] != meta.dim:
        raise FeatureTableError(f"{fields['utt_id']}: frames have shape {frames.shape}, expected (T, {meta.dim})")
    if fields["label"] not in meta.labels:
        raise FeatureTableError(f"{fields['utt_id']}: label {fields['label']!r} "
                                f"is not in the label set {meta.labels}")
    return frames.astype(meta.dtype, copy=False)


def build_table(items: Iterable[tuple[Utterance | dict, np.ndarray]], meta: FeatureMeta) -> pa.Table:
    """A feature table from (record, frames (T, D)) pairs, frames cast to `meta.dtype`."""
    if meta.dtype not in DTYPES:
        raise FeatureTableError(f"dtype {meta.dtype!r} is not one of {sorted(DTYPES)}")
    rows, blocks = [], []
    for record, frames in items:
        rows.append(record_fields(record))
        blocks.append(checked_frames(rows[-1], frames, meta))
    values = np.concatenate(blocks) if blocks else np.zeros((0, meta.dim), meta.dtype)
    return assemble_table(rows, [len(b) for b in blocks], pa.array(values.reshape(-1)), meta)


def assemble_table(rows: list[dict], lengths: Sequence[int], values: pa.Array, meta: FeatureMeta) -> pa.Table:
    """The table of utterances `rows` (their per-utterance columns) whose frames, `lengths[i]` each, lie back to back
    in the flat array `values` (used as it is: a memory-mapped one stays on disk)."""
    schema = feature_schema(meta)
    frame_type = schema.field("features").type.value_type
    frames_array = pa.FixedSizeListArray.from_arrays(values, type=frame_type)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]), pa.int32())
    features = pa.ListArray.from_arrays(offsets, frames_array, type=schema.field("features").type)
    arrays = [pa.array([row[c] for row in rows], schema.field(c).type) for c in RECORD_COLUMNS]
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
        table.validate(full=True)  # offsets pointing outside the buffers, strings that are not UTF-8
    except (pa.ArrowInvalid, OSError) as exc:
        raise FeatureTableError(f"{path}: not a readable Arrow IPC file ({one_line(exc)})") from None
    meta = validate_table(table, str(path))
    check_finite(table, str(path))
    return table, meta


def read_table(path: str | Path) -> pa.Table:
    """Memory-map a feature table (no copy of the frames) and validate its schema."""
    return _open_table(Path(path))[0]


def fingerprint(table: pa.Table) -> str:
    """16 hex chars of sha256 over the content and metadata (ignoring `created`), chunking-independent."""
    meta = asdict(validate_table(table, "<table>"))
    meta.pop("created")
    for key in ("normalization", "provenance"):  # unset: the fingerprint of tables written before the fields existed
        if meta[key] is None:
            meta.pop(key)
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


def combined_fingerprint(entries: dict[str, dict], folds: dict | None) -> str:
    """A directory's fingerprint: its tables' fingerprints, and with `folds` the cut (dev fraction, seed) too."""
    tables = {name: entries[name]["fingerprint"] for name in sorted(entries)}
    if folds is None:
        return hashlib.sha256(json.dumps(tables).encode()).hexdigest()[:16]
    cut = {"tables": tables, "dev_fraction": folds["dev_fraction"], "seed": folds["seed"]}
    return hashlib.sha256(json.dumps(cut, sort_keys=True).encode()).hexdigest()[:16]


def write_index(directory: str | Path, meta: FeatureMeta, splits: dict[str, dict], folds: dict | None = None) -> dict:
    """Write `features.json` atomically; its fingerprint combines the table fingerprints (and the folds' cut).

    `splits`: the fixed splits' entries; with `folds` ({sessions: {session: utterances}, dev_fraction, seed}),
    the one entry of the whole-corpus table instead.
    """
    shared = asdict(meta)
    shared.pop("split")
    combined = combined_fingerprint(splits, folds)
    if folds is None:
        index = {"meta": shared, "splits": splits, "fingerprint": combined}
    else:
        index = {"meta": shared, "tables": splits, "folds": folds, "fingerprint": combined}
    write_text_atomic(Path(directory) / INDEX_NAME, json.dumps(index, indent=2) + "\n")
    return index


def read_index(directory: str | Path) -> dict:
    """The parsed `features.json` of a feature directory."""
    directory = Path(directory)
    path = directory / INDEX_NAME
    if not directory.is_dir():
        raise FeatureTableError(f"{directory}: feature directory not found")
    index = read_json(path, FeatureIndex, error=FeatureTableError,
                      missing="index not found (run `emodistill features extract` to completion)")
    if (index.folds is None) != (index.tables is None) or (index.tables is None) == (index.splits is None):
        raise FeatureTableError(f"{path}: expected either 'splits' or 'tables' with 'folds'")
    # The absent layout's keys are left out: callers tell the layouts apart by `"folds" in index`.
    index = {key: value for key, value in index.model_dump().items() if value is not None}
    # Pool caches, checkpoints and fold-leak checks key on this fingerprint: an edited cut or table entry must not
    # keep the fingerprint of the data it no longer describes.
    found = combined_fingerprint(table_entries(index), index.get("folds"))
    if found != index["fingerprint"]:
        raise FeatureTableError(f"{path}: fingerprint {index['fingerprint']!r} does not match its tables and folds "
                                f"(they give {found!r}): the index was edited; extract the features again")
    return index


def table_entries(index: dict) -> dict[str, dict]:
    """Name -> index entry of every table of the directory (`corpus`, or `train`, `dev`, `test`)."""
    return index["tables"] if "folds" in index else index["splits"]


def fold_sessions(index: dict) -> list[int] | None:
    """The sessions a directory's folds can test on (fold K tests on session K); None for fixed splits."""
    return sorted(int(s) for s in index["folds"]["sessions"]) if "folds" in index else None


def default_fold(sessions: list[int]) -> int:
    """The fold a run takes when none is named: 1 (SUPERB's and the paper's), else the first session."""
    return 1 if 1 in sessions else min(sessions)


def resolve_fold(index: dict, fold: int | None, directory: str | Path) -> int | None:
    """The fold a run on `directory` uses: `fold`, or default_fold when not given; None for fixed splits, which
    refuse a fold."""
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int | np.integer)):
        raise ConfigError(f"{directory}: fold must be a session number, got {fold!r}")
    sessions = fold_sessions(index)
    if sessions is None:
        if fold is not None:
            raise ConfigError(f"{directory}: its splits were fixed when it was extracted (a manifest's split column, "
                              f"or an extraction made before folds were chosen at load time), so it has no fold "
                              f"{fold}; extract the corpus again without a split column to choose folds")
        return None
    if fold is None:
        return default_fold(sessions)
    if fold not in sessions:
        raise ConfigError(f"{directory}: no fold {fold} (fold K tests on session K; sessions: {sessions})")
    return int(fold)


def fold_fingerprint(fingerprint: str, fold: int | None, data: DataConfig | None = None) -> str:
    """The fingerprint of one fold of a directory whose recorded fingerprint is `fingerprint` (itself for None), under
    the data protocol `data` (SUPERB's when None: the fold's fingerprint as it was before data protocols)."""
    if fold is not None:
        fingerprint = hashlib.sha256(f"{fingerprint}:fold{fold}".encode()).hexdigest()[:16]
    return data_fingerprint(fingerprint, data or DataConfig())


def dataset_fingerprint(directory: str | Path, fold: int | None = None, data: DataConfig | None = None) -> str:
    """The fingerprint of the data a run on `directory`, `fold` and `data` sees: the recorded fingerprint of a
    directory with fixed splits, one per fold of a directory with folds, one per data protocol (so checkpoints and
    pool caches never mix folds or protocols)."""
    index = read_index(directory)
    return fold_fingerprint(index["fingerprint"], resolve_fold(index, fold, directory), data)


def fold_of(index: dict, fingerprint: str | None, data: DataConfig | None = None) -> int | None:
    """The fold of a directory (its index) whose fingerprint under `data` is `fingerprint`; None if none is."""
    folds = fold_sessions(index) or []
    return next((k for k in folds if fold_fingerprint(index["fingerprint"], k, data) == fingerprint), None)


def check_data(index: dict, data: DataConfig, directory: str | Path) -> None:
    """Refuse a dev split by speaker on fixed splits, whose dev split was fixed at extraction."""
    if data.dev_by == "speaker" and "folds" not in index:
        raise ConfigError(f"{directory}: its splits were fixed when it was extracted, so its dev split cannot be "
                          "held out by speaker (data.dev_by speaker); extract the corpus without a split column, "
                          "or use dev_by utterance")


def _shared(meta: dict) -> dict:
    """A table's metadata as the index records it for all tables: without its split and creation time."""
    return {key: value for key, value in meta.items() if key not in ("split", "created")}


def open_tables(directory: str | Path, data: DataConfig | None = None) -> dict[str, tuple[pa.Table, FeatureMeta]]:
    """Memory-map the directory's tables (`corpus`, or `train`, `dev`, `test`), each validated and checked against
    the index; name -> (table, its metadata). With `data.normalize` "speaker", the tables are normalised by speaker
    (a copy of the frames, in memory), each speaker's statistics over all of them."""
    directory = Path(directory)
    index = read_index(directory)
    entries = table_entries(index)
    tables = {}
    for name in (CORPUS,) if "folds" in index else SPLITS:
        path, what = directory / f"{name}.arrow", "table" if name == CORPUS else "split"
        entry = entries.get(name)
        if entry is None:
            raise FeatureTableError(f"{directory / INDEX_NAME}: {what} '{name}' missing from the index")
        if not path.is_file():
            raise FeatureTableError(f"{path}: {what} '{name}' missing from feature directory {directory}")
        table, meta = _open_table(path)
        # A re-extraction interrupted after some tables leaves tables the index does not describe.
        if meta.created != entry["created"] or path.stat().st_size != entry["bytes"]:
            raise FeatureTableError(f"{path}: does not match {INDEX_NAME} (interrupted extraction?); extract again")
        edited = sorted(key for key, value in _shared(asdict(meta)).items() if index["meta"].get(key) != value)
        if edited:  # the index's meta is what `features info` prints and runs record
            raise FeatureTableError(f"{directory / INDEX_NAME}: meta {', '.join(edited)} differ from {path}'s "
                                    "metadata (an edited index); extract the features again")
        tables[name] = table, meta
    if data is not None and data.normalize == "speaker":
        normalized = normalize_tables({name: table for name, (table, _) in tables.items()},
                                      {name: str(directory / f"{name}.arrow") for name in tables})
        tables = {name: (table, validate_table(table, str(directory / f"{name}.arrow")))
                  for name, table in normalized.items()}
    return tables


def verify_tables(directory: str | Path) -> None:
    """Recompute each table's content fingerprint (reading every frame) and raise IntegrityError unless it is the
    one features.json recorded when the table was written."""
    directory = Path(directory)
    entries = table_entries(read_index(directory))
    for name, (table, _) in open_tables(directory).items():
        path = directory / f"{name}.arrow"
        found = fingerprint(table)  # open_tables validated its buffers
        if found != entries[name]["fingerprint"]:
            raise IntegrityError(f"{path}: its content fingerprint is {found}, but {INDEX_NAME} recorded "
                                 f"{entries[name]['fingerprint']}: the table changed since it was extracted; extract "
                                 "the features again")


def fold_rows(table: pa.Table, folds: dict, fold: int, dev_by: str = "utterance") -> dict[str, np.ndarray]:
    """Split -> row positions in the whole-corpus `table` of fold `fold` (cut as the index's `folds` says, dev held
    out by utterance or by speaker)."""
    index = fold_index(table.column("utt_id").to_pylist(), table.column("session").to_pylist(), fold,
                       folds["dev_fraction"], folds["seed"], speakers=table.column("speaker").to_pylist(),
                       dev_by=dev_by)
    return index._asdict()


def open_splits(directory: str | Path, fold: int | None = None, data: DataConfig | None = None) -> dict[str, pa.Table]:
    """The train/dev/test tables of `fold` (see resolve_fold) under the data protocol `data`, checked against the
    index (memory-mapped unless normalised).

    A fold's tables are taken from the whole-corpus table, which copies their rows; load_splits does not.
    """
    data = data or DataConfig()
    index = read_index(directory)
    fold = resolve_fold(index, fold, directory)
    check_data(index, data, directory)
    tables = {name: table for name, (table, _) in open_tables(directory, data).items()}
    if fold is None:
        return tables
    rows = fold_rows(tables[CORPUS], index["folds"], fold, data.dev_by)
    return {split: tables[CORPUS].take(rows[split]) for split in SPLITS}


def load_splits(directory: str | Path, fold: int | None = None,
                data: DataConfig | Mapping[str, Any] | None = None) -> dict[str, FeatureSet]:
    """The train/dev/test splits of `fold` (see resolve_fold) under the data protocol `data` (default SUPERB's) as
    FeatureSets: a fold's splits are views of the whole-corpus table, zero-copy unless normalised."""
    [splits] = load_folds(directory, [fold], data).values()
    return splits


def data_config(data: DataConfig | Mapping[str, Any] | None) -> DataConfig:
    """`data` as a DataConfig: SUPERB's protocol for None, a mapping's settings checked by name."""
    if data is None or isinstance(data, DataConfig):
        return data or DataConfig()
    if not isinstance(data, Mapping):
        raise ConfigError(f"data: expected a DataConfig or a mapping of its settings, got {type(data).__name__}")
    return validate(data, DataConfig, "data")


def load_folds(directory: str | Path, folds: list[int | None],
               data: DataConfig | Mapping[str, Any] | None = None) -> dict[int | None, dict[str, FeatureSet]]:
    """Fold -> its train/dev/test FeatureSets, each fold as resolve_fold resolves it (None: the default fold, or
    the fixed splits), the directory's tables opened, validated (and normalised) once for all of them."""
    data = data_config(data)
    directory = Path(directory)
    index = read_index(directory)
    folds = [resolve_fold(index, fold, directory) for fold in folds]
    check_data(index, data, directory)
    tables = open_tables(directory, data)
    if "folds" not in index:
        return {None: {split: FeatureSet.from_table(table, str(directory / f"{split}.arrow"), meta)
                       for split, (table, meta) in tables.items()}}
    return {fold: split_fold(*tables[CORPUS], index["folds"], fold, str(directory / f"{CORPUS}.arrow"), data.dev_by)
            for fold in folds}


def train_bytes(directory: str | Path, train: FeatureSet) -> int:
    """What the real training split takes: its file's bytes for fixed splits, its frames' bytes for a fold (whose
    split has no file of its own)."""
    index = read_index(directory)
    return train.nbytes if "folds" in index else index["splits"]["train"]["bytes"]


def split_fold(table: pa.Table, meta: FeatureMeta, folds: dict, fold: int, source: str,
               dev_by: str = "utterance") -> dict[str, FeatureSet]:
    """Fold `fold`'s train/dev/test views of the whole-corpus `table`, validated where it was opened (its `meta`);
    no frame is copied."""
    corpus = FeatureSet.from_table(table, source, meta)
    # Each view names its split, as a split's own table does (a generator records the metadata it learnt from).
    return {split: replace(corpus.subset(rows), meta=replace(corpus.meta, split=split))
            for split, rows in fold_rows(table, folds, fold, dev_by).items()}
