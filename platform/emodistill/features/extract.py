"""Utterance records -> one Arrow feature table per split + the directory index."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emodistill.corpora.audio import read_audio
from emodistill.corpora.folds import leave_one_session_out
from emodistill.corpora.records import SUPERB_LABELS, Utterance
from emodistill.errors import ConfigError, CorpusError
from emodistill.features.schema import DTYPES, FeatureMeta
from emodistill.features.store import (SPLITS, build_table, check_replaceable, split_summary, write_index,
                                      write_table)
from emodistill.features.upstream import Upstream
from emodistill.files import atomic_path

log = logging.getLogger(__name__)

SPLIT_USES = {
    "train": "the generator and the L_SML pool learn from it",
    "dev": "distill and sweeps choose their checkpoints on it",
    "test": "evaluate reports UAR on it",
}


def check_labels(splits: Mapping[str, Sequence[Utterance]], labels: Sequence[str]) -> None:
    """Fail before any extraction if a record's label is outside the label set."""
    for records in splits.values():
        for r in records:
            if r.label not in labels:
                raise CorpusError(f"{r.path}: label {r.label!r} of {r.utt_id} is not in the label set {list(labels)}")


def check_not_empty(splits: Mapping[str, Sequence[Utterance]]) -> None:
    """Fail before any extraction if a split has no utterances, saying what needs it."""
    for split in SPLITS:
        if not splits[split]:
            raise CorpusError(f"the {split} split has no utterances, but {SPLIT_USES[split]} "
                              f"(a manifest's 'split' column needs {split} rows)")


def _size(path: Path) -> int:
    """File size as a cheap length proxy; a missing file sorts first and fails when read."""
    return path.stat().st_size if path.is_file() else 0


def extract_split(records: Sequence[Utterance], upstream: Upstream, bar: tqdm) -> tuple[list[np.ndarray], float]:
    """Frames of every record (in record order) and the seconds of audio they cover; `bar` counts the records."""
    # Batching utterances of similar length keeps the padding, and its cost, small.
    order = sorted(range(len(records)), key=lambda i: _size(Path(records[i].path)))
    frames: list[np.ndarray | None] = [None] * len(records)
    seconds = 0.0
    for start in range(0, len(order), upstream.batch_size):
        chunk = order[start:start + upstream.batch_size]
        wavs = [read_audio(records[i].path, upstream.sample_rate) for i in chunk]
        seconds += sum(len(w) for w in wavs) / upstream.sample_rate
        for i, out in zip(chunk, upstream.batch(wavs)):
            frames[i] = out
        bar.update(len(chunk))
    return frames, seconds


def extract_features(records_or_splits: Sequence[Utterance] | Mapping[str, Sequence[Utterance]],
                     upstream: Upstream, out_dir: str | Path, corpus_name: str,
                     labels: Sequence[str] = SUPERB_LABELS, dtype: str = "float32", progress: bool = True,
                     test_session: int = 1, dev_fraction: float = 0.2, seed: int = 0) -> dict:
    """Extract train/dev/test tables into `out_dir` and write its index; returns the index.

    A list of records is split by leave-one-session-out; a mapping is taken as the splits.
    The folder is replaced as a whole, only once every table and the index are written.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    if isinstance(records_or_splits, Mapping):
        splits = dict(records_or_splits)
    else:
        splits = leave_one_session_out(records_or_splits, test_session, dev_fraction, seed)._asdict()
    if sorted(splits) != sorted(SPLITS):
        raise ConfigError(f"splits are {sorted(splits)}, expected {list(SPLITS)}")
    check_not_empty(splits)
    check_labels(splits, labels)
    out_dir = Path(out_dir)
    check_replaceable(out_dir)
    meta = FeatureMeta(corpus=corpus_name, upstream=upstream.name, upstream_config=upstream.describe(),
                       layer=upstream.layer, sample_rate=upstream.sample_rate, frame_rate=upstream.frame_rate,
                       dim=upstream.dim, labels=list(labels), dtype=dtype)
    # Every split and the index go into a staging folder that replaces `out_dir` as a whole, and only once
    # all of them are written: a failure in a later split leaves the previous folder exactly as it was.
    total = sum(len(records) for records in splits.values())
    with atomic_path(out_dir) as staging, tqdm(total=total, desc=f"features ({upstream.name})", unit="utt",
                                               disable=not progress) as bar:
        staging.mkdir()
        summaries = {split: _write_split(splits[split], upstream, replace(meta, split=split), staging, bar)
                     for split in SPLITS}
        index = write_index(staging, meta, summaries)
    log.info("wrote %s (dataset fingerprint %s)", out_dir, index["fingerprint"])
    return index


def _write_split(records: Sequence[Utterance], upstream: Upstream, meta: FeatureMeta, directory: Path,
                 bar: tqdm) -> dict:
    """Extract one split into `directory`/SPLIT.arrow; return its index entry."""
    bar.set_postfix_str(meta.split)
    frames, seconds = extract_split(records, upstream, bar)
    table = build_table(zip(records, frames), meta)
    summary = split_summary(table, write_table(table, directory / f"{meta.split}.arrow"), seconds)
    log.debug("extracted %s: %d utterances, %d frames, fingerprint %s", meta.split, table.num_rows,
              summary["frames"], summary["fingerprint"])
    return summary
