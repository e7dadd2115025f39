"""CSV manifests: bring your own corpus, and the interchange file (`corpus.csv`) every `corpus` command writes.

Columns: `path`, `label`, `speaker` (required); `utt_id` (default: the file stem), `session`, `gender`
(`F`/`M`/empty), `duration` (seconds) and `split` (`train`/`dev`/`test`) are optional. Relative paths resolve
against the CSV's folder. A `split` column carries predefined splits: `manifest_splits` groups the records by it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emodistill.corpora.records import SUPERB_LABELS, Utterance
from emodistill.corpora.report import LoadReport, require_audio
from emodistill.errors import CorpusError
from emodistill.files import atomic_path

MANIFEST_NAME = "corpus.csv"  # what every `corpus` command writes, and what a corpus folder is read through
REQUIRED_COLUMNS = ("path", "label", "speaker")
OPTIONAL_COLUMNS = ("utt_id", "session", "gender", "duration", "split")
# Sessions are stored as up to nine digits in feature tables; a day of audio is no utterance.
MAX_NUMBER = {"session": 999_999_999, "duration": 86_400.0}
SPLITS = ("train", "dev", "test")
_GENDERS = {"F": "F", "M": "M", "": None}


def manifest_path(corpus: str | Path) -> Path:
    """A corpus given as a manifest CSV or as the folder holding its corpus.csv, as the CSV's path."""
    corpus = Path(corpus)
    path = corpus / MANIFEST_NAME if corpus.is_dir() else corpus
    if not path.is_file():
        raise CorpusError(f"{path}: corpus manifest not found (give a {MANIFEST_NAME} or the directory holding one)")
    return path


def load_manifest(csv_path: str | Path, labels: Sequence[str] = SUPERB_LABELS,
                  strict: bool = False) -> list[Utterance]:
    """The manifest's utterances that have audio; missing files are warned about, or a CorpusError if strict."""
    return read_checked_manifest(csv_path, labels, strict)[0]


def manifest_splits(csv_path: str | Path, labels: Sequence[str] = SUPERB_LABELS,
                    strict: bool = False) -> dict[str, list[Utterance]] | None:
    """The manifest's utterances with audio grouped by its `split` column (keys SPLITS); None without that column."""
    kept, split_of, _ = read_checked_manifest(csv_path, labels, strict)
    return None if split_of is None else group_by_split(kept, split_of)


def read_checked_manifest(csv_path: str | Path, labels: Sequence[str] = SUPERB_LABELS, strict: bool = False
                          ) -> tuple[list[Utterance], dict[str, str] | None, LoadReport]:
    """The records that have audio, utt_id -> split (None without a `split` column) and what was skipped."""
    records, split_of = read_manifest(csv_path, labels)
    kept, report = require_audio(records, source=csv_path, strict=strict)
    return kept, split_of, report


def group_by_split(records: Iterable[Utterance], split_of: Mapping[str, str]) -> dict[str, list[Utterance]]:
    """Records grouped by their split (keys SPLITS, in order)."""
    records = list(records)
    return {name: [r for r in records if split_of[r.utt_id] == name] for name in SPLITS}


def read_manifest(csv_path: str | Path,
                  labels: Sequence[str] = SUPERB_LABELS) -> tuple[list[Utterance], dict[str, str] | None]:
    """Every row as a record (audio not checked), and utt_id -> split when the CSV has a `split` column."""
    csv_path = Path(csv_path)
    if csv_path.exists() and not csv_path.is_file():  # a folder, a pipe or /dev/zero: read forever, or not at all
        raise CorpusError(f"{csv_path}: not a regular file (expected a manifest CSV)")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets prepend a BOM
            reader = csv.DictReader(f)
            columns = _check_columns(csv_path, reader.fieldnames)
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{csv_path}: cannot read manifest ({exc})") from None
    if not rows:
        raise CorpusError(f"{csv_path}: manifest has a header but no rows")
    records, split_of, first_line = [], {}, {}
    for line, row in rows:
        record, split = _parse_row(row, _Row(csv_path, line, tuple(labels)))
        if record.utt_id in first_line:
            raise CorpusError(f"{csv_path}:{line}: column 'utt_id': {record.utt_id!r} already used on line "
                              f"{first_line[record.utt_id]} (utt_id defaults to the file stem; ids must be unique)")
        first_line[record.utt_id] = line
        records.append(record)
        split_of[record.utt_id] = split
    return records, (split_of if "split" in columns else None)


def write_manifest(records: Iterable[Utterance], csv_path: str | Path,
                   split_of: Mapping[str, str] | None = None) -> Path:
    """Write records atomically as a manifest (paths relative when under the CSV's folder); `split_of` adds `split`."""
    csv_path = Path(csv_path)
    base = csv_path.parent.resolve()
    columns = ["utt_id", "path", "label", "speaker", "gender", "session", "duration"]
    columns += ["split"] if split_of is not None else []
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in records:
            path = r.path.resolve()
            row = [r.utt_id, path.relative_to(base) if path.is_relative_to(base) else path, r.label, r.speaker,
                   r.gender or "", "" if r.session is None else r.session,
                   "" if r.duration is None else repr(float(r.duration))]
            writer.writerow(row + ([split_of[r.utt_id]] if split_of is not None else []))
    return csv_path


@dataclass(frozen=True)
class _Row:
    """Where a manifest row came from (to name it in errors) and the label set it must use."""

    csv_path: Path
    line: int
    labels: tuple[str, ...]

    def error(self, column: str, problem: str) -> CorpusError:
        return CorpusError(f"{self.csv_path}:{self.line}: column {column!r}: {problem}")


def _check_columns(csv_path: Path, fieldnames: Sequence[str] | None) -> set[str]:
    if not fieldnames:
        raise CorpusError(f"{csv_path}: empty manifest (expected a header with {', '.join(REQUIRED_COLUMNS)})")
    columns = set(fieldnames)
    repeated = sorted({c for c in fieldnames if fieldnames.count(c) > 1})
    if repeated:  # DictReader would keep the last of them silently
        raise CorpusError(f"{csv_path}: column(s) {', '.join(map(repr, repeated))} appear more than once in the "
                          "header")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise CorpusError(f"{csv_path}: missing required column(s) {', '.join(missing)} "
                          f"(header has: {', '.join(fieldnames)})")
    unknown = sorted(columns - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:  # most likely a typo of an optional column, which would otherwise be ignored silently
        raise CorpusError(f"{csv_path}: unknown column(s) {', '.join(unknown)} "
                          f"(allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})")
    return columns


def _parse_row(row: dict[str, str | None], at: _Row) -> tuple[Utterance, str | None]:
    if None in row:  # DictReader's bucket for cells beyond the header
        raise CorpusError(f"{at.csv_path}:{at.line}: row has more cells than the header")
    value = {k: (v or "").strip() for k, v in row.items()}
    for column in REQUIRED_COLUMNS:
        if not value[column]:
            raise at.error(column, "empty (required)")
    if value["label"] not in at.labels:
        raise at.error("label", f"unknown label {value['label']!r} (expected one of {', '.join(at.labels)})")
    if value.get("gender", "") not in _GENDERS:
        raise at.error("gender", f"{value['gender']!r} is not F, M or empty")
    path = Path(value["path"])
    record = Utterance(
        utt_id=value.get("utt_id") or path.stem,
        path=_utf8_path((at.csv_path.parent / path).absolute(), at),
        speaker=value["speaker"],
        gender=_GENDERS[value.get("gender", "")],
        session=_parse_number(value.get("session", ""), int, "session", at),
        label=value["label"],
        duration=_parse_number(value.get("duration", ""), float, "duration", at),
    )
    split = value.get("split")
    if split is not None and split not in SPLITS:
        raise at.error("split", f"{split!r} is not one of {', '.join(SPLITS)}")
    return record, split


def _utf8_path(path: Path, at: _Row) -> Path:
    """`path` if its name is valid UTF-8, as corpus.csv and the feature tables store it."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise at.error("path", f"{path} is not valid UTF-8 (a folder or file named in another encoding): "
                               "rename it, or move the corpus under a UTF-8 path") from None
    return path


def _parse_number(text: str, kind: type, column: str, at: _Row) -> int | float | None:
    if not text:
        return None
    try:
        number = kind(text)
    except ValueError:
        raise at.error(column, f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not 0 < number <= MAX_NUMBER[column]:  # nan and inf too
        raise at.error(column, f"{text!r} must be positive, at most {MAX_NUMBER[column]}")
    return number
