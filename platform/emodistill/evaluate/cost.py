"""The cost report: storage of the training set as audio, as features and as a generator (paper Table 1),
and the downstream's wall time to its selected checkpoint on synthetic vs real data (Sec. 5.2)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from emodistill.corpora import MANIFEST_NAME, SUPERB_LABELS, read_manifest
from emodistill.errors import ConfigError, CorpusError

log = logging.getLogger(__name__)

def reduction_pct(before: float, after: float) -> float:
    """How much smaller (or faster) `after` is than `before`, in percent."""
    if before <= 0:
        raise ConfigError(f"reduction: the baseline quantity must be positive, got {before}")
    return 100.0 * (1.0 - after / before)


def directory_bytes(path: str | Path) -> int:
    """Bytes of every file under `path` (a generator artifact, a feature directory)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found")
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def audio_bytes(source: str | Path, utt_ids: Iterable[str] | None = None,
                labels: Sequence[str] = SUPERB_LABELS) -> int:
    """Bytes of the corpus audio: the files a manifest CSV (or a folder with corpus.csv) lists, restricted to
    `utt_ids` when given; for a folder without a manifest, every .wav under it."""
    source = Path(source)
    manifest = source / MANIFEST_NAME if source.is_dir() else source
    if source.is_dir() and not manifest.is_file():
        wavs = list(source.rglob("*.wav"))
        if not wavs:
            raise CorpusError(f"{source}: no {MANIFEST_NAME} and no .wav files")
        return sum(f.stat().st_size for f in wavs)
    if not manifest.is_file():
        raise CorpusError(f"{source}: neither a manifest CSV nor a corpus folder")
    records, _ = read_manifest(manifest, labels)
    wanted = None if utt_ids is None else set(utt_ids)
    paths = [r.path for r in records if wanted is None or r.utt_id in wanted]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        log.warning("%s: %d of %d audio files are missing and not counted (first: %s)", manifest, len(missing),
                    len(paths), missing[0])
    return sum(p.stat().st_size for p in paths if p.is_file())


def size_report(feature_bytes: int, generator_bytes: Mapping[str, int], audio: int | None = None) -> dict:
    """Sizes in bytes and each generator's % reduction against the features (and the audio when known)."""
    generators = {}
    for name, size in generator_bytes.items():
        entry = {"bytes": int(size), "reduction_vs_features_pct": reduction_pct(feature_bytes, size)}
        if audio is not None:
            entry["reduction_vs_audio_pct"] = reduction_pct(audio, size)
        generators[name] = entry
    report = {"audio_bytes": audio, "feature_bytes": int(feature_bytes), "generators": generators}
    if audio is not None:
        report["features_reduction_vs_audio_pct"] = reduction_pct(audio, feature_bytes)
    return report


def time_report(reference_seconds: float, synthetic_seconds: Mapping[str, Mapping[str, float]]) -> dict:
    """Downstream seconds to the selected checkpoint per source and condition, with % reduction vs real data."""
    sources = {name: {key: {"seconds": float(s), "reduction_pct": reduction_pct(reference_seconds, s)}
                      for key, s in per_condition.items()}
               for name, per_condition in synthetic_seconds.items()}
    return {"reference_seconds": float(reference_seconds), "sources": sources}
