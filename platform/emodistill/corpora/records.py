"""The utterance record every corpus loader returns, and the SUPERB 4-class label set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# SUPERB's emotion recipe: 4 classes, in this order everywhere (one-hot index = position).
SUPERB_LABELS: tuple[str, ...] = ("neu", "hap", "ang", "sad")


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance on disk; corpus-agnostic."""

    utt_id: str
    path: Path
    speaker: str
    gender: str | None  # "F", "M" or None when unknown
    session: int | None  # fold number; None when the corpus has none
    label: str
    duration: float | None = None  # seconds, when known without decoding
