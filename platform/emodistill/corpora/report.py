"""Labelled utterances whose audio is missing: every loader counts and reports them, never drops them silently."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emodistill.corpora.records import Utterance
from emodistill.errors import CorpusError

log = logging.getLogger(__name__)

_SHOWN_IDS = 5  # how many missing utterance ids a message names


@dataclass(frozen=True)
class LoadReport:
    """What a loader kept from `source`, and the ids of labelled utterances it skipped for lack of audio."""

    source: str
    kept: int
    missing: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line naming how many labelled utterances have no audio file, and the first few of them."""
        total = self.kept + len(self.missing)
        shown = ", ".join(self.missing[:_SHOWN_IDS]) + (", ..." if len(self.missing) > _SHOWN_IDS else "")
        return f"{self.source}: {len(self.missing)} of {total} labelled utterances have no audio file ({shown})"


def require_audio(records: Iterable[Utterance], source: str | Path,
                  strict: bool = False) -> tuple[list[Utterance], LoadReport]:
    """Keep the records whose audio file exists; warn about the others, or raise CorpusError under `strict`."""
    kept, missing = [], []
    for record in records:
        (kept if record.path.is_file() else missing).append(record)
    report = LoadReport(str(source), len(kept), tuple(r.utt_id for r in missing))
    if missing:
        if strict:
            raise CorpusError(report.describe())
        log.warning("%s; skipped them", report.describe())
    return kept, report
