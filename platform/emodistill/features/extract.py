"""Utterance records -> one whole-corpus Arrow feature table (or one per fixed split) + the directory index."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emodistill.corpora.audio import read_audio
from emodistill.corpora.folds import fold_index
from emodistill.corpora.records import SUPERB_LABELS, Utterance
from emodistill.errors import ConfigError, CorpusError, FeatureTableError
from emodistill.features.schema import DTYPES, FeatureMeta
from emodistill.features.store import (CORPUS, FEATURE_FILES, INDEX_NAME, SPLITS, default_fold, read_index,
                                      split_summary, write_index, write_table)
from emodistill.features.spill import FrameSpill
from emodistill.features.upstream import Upstream, make_upstream
from emodistill.files import atomic_path, check_replaceable, errors_named_after
from emodistill.memory import release_free_heap, shape_cache_capped

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


def check_folds(records: Sequence[Utterance], dev_fraction: float, seed: int) -> dict:
    """Fail before any extraction unless every session's fold has train, dev and test utterances; return the
    index's `folds` entry."""
    utt_ids, sessions = [r.utt_id for r in records], [r.session for r in records]
    counts = Counter(sessions)
    for session in sorted(counts, key=lambda s: (s is None, s)):
        fold = fold_index(utt_ids, sessions, session, dev_fraction, seed)
        for split in SPLITS:
            if not len(getattr(fold, split)):
                raise CorpusError(f"fold {session} (test session {session}) has no {split} utterances, but "
                                  f"{SPLIT_USES[split]}; a corpus needs two sessions or more, and enough utterances "
                                  f"for --dev-fraction {dev_fraction}")
    return {"sessions": {str(s): counts[s] for s in sorted(counts)}, "dev_fraction": dev_fraction, "seed": seed}


def _size(path: Path) -> int:
    """File size as a cheap length proxy; a missing file sorts first and fails when read."""
    return path.stat().st_size if path.is_file() else 0


def extract_split(records: Sequence[Utterance], upstream: Upstream, bar: tqdm,
                  add: Callable[[int, np.ndarray], None]) -> float:
    """`add(i, frames)` for every record i, batched by length; the seconds of audio they cover. `bar` counts the
    records."""
    # Batching utterances of similar length keeps the padding, and its cost, small.
    order = sorted(range(len(records)), key=lambda i: _size(Path(records[i].path)))
    seconds = 0.0
    for start in range(0, len(order), upstream.batch_size):
        chunk = order[start:start + upstream.batch_size]
        wavs = [read_audio(records[i].path, upstream.sample_rate) for i in chunk]
        seconds += sum(len(w) for w in wavs) / upstream.sample_rate
        for i, out in zip(chunk, upstream.batch(wavs)):
            add(i, out)
        release_free_heap()  # memory bounded by a batch, not by the number of batches
        bar.update(len(chunk))
    return seconds


def extract_features(records_or_splits: Sequence[Utterance] | Mapping[str, Sequence[Utterance]],
                     upstream: Upstream, out_dir: str | Path, corpus_name: str,
                     labels: Sequence[str] = SUPERB_LABELS, dtype: str = "float32", progress: bool = True,
                     dev_fraction: float = 0.2, seed: int = 0) -> dict:
    """Extract the features into `out_dir` and write its index; returns the index.

    A list of records (each with a session) becomes one whole-corpus table, in record order: a run chooses its
    leave-one-session-out fold when it loads it (the other sessions cut into train/dev by `dev_fraction` and
    `seed`). A mapping is taken as fixed train/dev/test splits, one table each.
    The folder is replaced as a whole, only once every table and the index are written.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    folds = None
    if isinstance(records_or_splits, Mapping):
        splits = dict(records_or_splits)
        if sorted(splits) != sorted(SPLITS):
            raise ConfigError(f"splits are {sorted(splits)}, expected {list(SPLITS)}")
        check_not_empty(splits)
    else:
        splits = {CORPUS: list(records_or_splits)}
        folds = check_folds(splits[CORPUS], dev_fraction, seed)
    check_labels(splits, labels)
    out_dir = Path(out_dir)
    check_replaceable(out_dir, FEATURE_FILES, "a feature directory", FeatureTableError)
    meta = FeatureMeta(corpus=corpus_name, upstream=upstream.name, upstream_config=upstream.describe(),
                       layer=upstream.layer, sample_rate=upstream.sample_rate, frame_rate=upstream.frame_rate,
                       dim=upstream.dim, labels=list(labels), dtype=dtype)
    # Every split and the index go into a staging folder that replaces `out_dir` as a whole, and only once
    # all of them are written: a failure in a later split leaves the previous folder exactly as it was.
    total = sum(len(records) for records in splits.values())
    # The cap on oneDNN's cache bounds memory by the longest batch, not by the number of batch lengths.
    with shape_cache_capped(), atomic_path(out_dir) as staging, \
            tqdm(total=total, desc=f"features ({upstream.name})", unit="utt", disable=not progress) as bar:
        staging.mkdir()
        # The whole-corpus table's metadata names no split: a fold's splits are chosen when it is loaded.
        summaries = {name: _write_split(records, upstream, replace(meta, split=None if folds else name), staging,
                                        name, bar, folds) for name, records in splits.items()}
        index = write_index(staging, meta, summaries, folds)
    log.info("wrote %s (dataset fingerprint %s)", out_dir, index["fingerprint"])
    return index


def _write_split(records: Sequence[Utterance], upstream: Upstream, meta: FeatureMeta, directory: Path, name: str,
                 bar: tqdm, folds: dict | None = None) -> dict:
    """Extract one table into `directory`/NAME.arrow, its frames spilled to disk as they come (FrameSpill: memory
    holds a batch); return its index entry."""
    bar.set_postfix_str(name)
    if folds is None:
        groups = [np.arange(len(records))]
    else:
        # Batched as fold 1's train, dev and test were when they were extracted as tables of their own: an HF
        # model's output depends on the padding its batch gets, so fold 1's features stay what they were.
        first = default_fold([int(s) for s in folds["sessions"]])
        groups = fold_index([r.utt_id for r in records], [r.session for r in records], first, folds["dev_fraction"],
                            folds["seed"])
    # A full disk while spilling is a failure to write the table: named after it, not after its scratch files.
    with errors_named_after(directory / f"{name}.arrow"), FrameSpill(records, meta, directory / f".{name}") as spill:
        seconds = 0.0
        for group in groups:
            seconds += extract_split([records[i] for i in group], upstream, bar,
                                     lambda i, frames, group=group: spill.add(int(group[i]), frames))
        table = spill.table()
        summary = split_summary(table, write_table(table, directory / f"{name}.arrow"), seconds)
    log.debug("extracted %s: %d utterances, %d frames, fingerprint %s", name, table.num_rows,
              summary["frames"], summary["fingerprint"])
    return summary


def embedded_features(out: Path, preset: str, seed: int = 0, corpus_name: str | None = None,
                      progress: bool = True) -> Path:
    """Fbank features (every fold) of the embedded corpus of `preset` and `seed` under `out`/features, synthesising
    it under `out`/corpus first; both are reused when present (features of another corpus are refused). The corpus
    is named `corpus_name`, by default espeak-PRESET."""
    # The corpus modules are needed only when the features are not there yet.
    from emodistill.corpora.manifest import MANIFEST_NAME, load_manifest
    from emodistill.corpora.synth import synthesize_corpus

    name, features = corpus_name or f"espeak-{preset}", out / "features"
    if (features / INDEX_NAME).is_file():
        corpus = read_index(features)["meta"]["corpus"]
        if corpus != name:
            raise ConfigError(f"{features}: holds the features of corpus {corpus}, not of preset {preset}"
                              f"{f' seed {seed}' if seed else ''}; choose another --out (or the preset it was made "
                              "with)")
        return features
    manifest = out / "corpus" / MANIFEST_NAME
    if manifest.is_file():
        records = load_manifest(manifest, strict=True)
    else:
        records = synthesize_corpus(out / "corpus", preset=preset, seed=seed, progress=progress)
    extract_features(records, make_upstream("fbank"), features, name, progress=progress)
    return features
