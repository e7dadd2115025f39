"""IEMOCAP -> utterance records in SUPERB's 4-class setup, read from the user's own copy of the corpus."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from emodistill.corpora.records import Utterance
from emodistill.corpora.report import require_audio
from emodistill.errors import CorpusError

SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
# SUPERB's emotion recipe merges excited into happy and drops every other category.
LABEL_MAP = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
DROPPED_CODES = frozenset({"xxx", "oth", "fru", "sur", "fea", "dis"})

_SPAN = re.compile(r"\[\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*\]")
# The last `_` token names who speaks the line (F/M), which may differ from the dialog's lead in `Ses01F`.
_UTT_ID = re.compile(r"Ses0(\d)[FM]_\S+_([FM])\d+")


def load_iemocap(root: str | Path, strict: bool = False, *,
                 sessions: Iterable[int] = SESSIONS) -> list[Utterance]:
    """IEMOCAP's 4-class utterances that have a wav; missing wavs are warned about, or a CorpusError if strict."""
    records, _ = require_audio(read_iemocap(root, sessions), source=root, strict=strict)
    return records


def read_iemocap(root: str | Path, sessions: Iterable[int] = SESSIONS) -> list[Utterance]:
    """Every 4-class labelled utterance in the label files of `sessions`, whether or not its wav exists."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: IEMOCAP root folder not found (expected the folder holding Session1..Session5)")
    records: list[Utterance] = []
    for session in _check_sessions(sessions):
        records += _read_session(root, session)
    seen: set[str] = set()
    for record in records:
        if record.utt_id in seen:
            raise CorpusError(f"{root}: utterance {record.utt_id} is labelled in more than one file")
        seen.add(record.utt_id)
    return records


def _check_sessions(sessions: Iterable[int]) -> list[int]:
    chosen = sorted(set(sessions))
    if not chosen or any(s not in SESSIONS for s in chosen):
        raise CorpusError(f"IEMOCAP sessions must be a non-empty subset of {SESSIONS}, got {chosen}")
    return chosen


def _read_session(root: Path, session: int) -> list[Utterance]:
    session_dir = root / f"Session{session}"
    label_dir = session_dir / "dialog" / "EmoEvaluation"
    wav_dir = session_dir / "sentences" / "wav"
    for required in (session_dir, label_dir, wav_dir):
        if not required.is_dir():
            raise CorpusError(f"{required}: IEMOCAP folder not found (expected Session{{1..5}}/dialog/EmoEvaluation "
                              f"and Session{{1..5}}/sentences/wav under {root})")
    # AppleDouble files (`._x.txt`) appear in copies made on macOS; they are not label files.
    label_files = sorted(p for p in label_dir.glob("*.txt") if not p.name.startswith("."))
    if not label_files:
        raise CorpusError(f"{label_dir}: no label files (<dialog>.txt) found")
    records: list[Utterance] = []
    for label_file in label_files:
        records += _read_label_file(label_file, session, wav_dir / label_file.stem)
    return records


def _read_label_file(path: Path, session: int, wav_dir: Path) -> list[Utterance]:
    records, number = [], 0
    try:
        # Free-text annotator comments may hold non-UTF-8 bytes; the summary lines we parse are ASCII.
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                if line.startswith("["):
                    record = _parse_summary(line, session, wav_dir)
                    if record is not None:
                        records.append(record)
    except ValueError as exc:
        raise CorpusError(f"{path}:{number}: {exc}") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read label file ({exc.strerror or exc})") from None
    return records


def _parse_summary(line: str, session: int, wav_dir: Path) -> Utterance | None:
    """One `[start - end]<TAB>utt_id<TAB>code<TAB>[v, a, d]` line -> a record, or None for a dropped category."""
    fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
    if len(fields) < 3:
        raise ValueError(f"expected '[start - end]<TAB>utt_id<TAB>emotion<TAB>[v, a, d]', got {line.strip()!r}")
    span, utt_id, code = fields[:3]
    times = _SPAN.fullmatch(span)
    if times is None or float(times[2]) <= float(times[1]):
        raise ValueError(f"time span {span!r} is not '[start - end]' with end > start")
    ident = _UTT_ID.fullmatch(utt_id)
    if ident is None or int(ident[1]) != session:
        raise ValueError(f"utterance id {utt_id!r} is not like 'Ses0{session}F_impro01_M000' (Session{session})")
    if code not in LABEL_MAP:
        if code in DROPPED_CODES:
            return None
        raise ValueError(f"unknown emotion code {code!r} (expected one of {sorted(LABEL_MAP.keys() | DROPPED_CODES)})")
    gender = ident[2]
    return Utterance(utt_id=utt_id, path=wav_dir / f"{utt_id}.wav", speaker=f"Ses0{session}{gender}", gender=gender,
                     session=session, label=LABEL_MAP[code],
                     duration=round(float(times[2]) - float(times[1]), 4))
