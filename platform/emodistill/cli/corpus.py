"""`emodistill corpus iemocap|manifest|synth`: read a corpus, write OUT/corpus.csv, print what it holds."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from emodistill.cli import command_help, out_path, seed
from emodistill.corpora import MANIFEST_NAME, SUPERB_LABELS, LoadReport, Utterance, read_iemocap, require_audio
from emodistill.corpora.audio import audio_duration
from emodistill.corpora.iemocap import SESSIONS
from emodistill.corpora.manifest import read_checked_manifest, write_manifest
from emodistill.errors import CorpusError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `corpus` and its three sources."""
    corpus = subparsers.add_parser("corpus", help=command_help("corpus"))
    sources = corpus.add_subparsers(dest="source", required=True, metavar="SOURCE")

    iemocap = sources.add_parser("iemocap", help="IEMOCAP, SUPERB 4-class (neu, hap+exc, ang, sad)")
    iemocap.add_argument("--root", type=Path, required=True, help="folder holding Session1..Session5")
    iemocap.add_argument("--sessions", type=int, nargs="+", default=list(SESSIONS), metavar="N",
                         help="sessions to read (default: all five)")
    _add_out(iemocap)
    _add_strict(iemocap)
    iemocap.set_defaults(func=run_iemocap)

    manifest = sources.add_parser("manifest", help="your own corpus from a CSV (path, label, speaker, ...)")
    manifest.add_argument("--csv", type=Path, required=True, help="manifest CSV; relative paths are from its folder")
    _add_out(manifest)
    _add_strict(manifest)
    manifest.set_defaults(func=run_manifest)

    synth = sources.add_parser("synth", help="the embedded espeak-ng corpus (no download, no licence)")
    synth.add_argument("--preset", default="default",
                       help="corpus size: tiny (tests), small (~1000, the demo), default (IEMOCAP-sized)")
    synth.add_argument("--seed", type=seed, default=0, help="random seed")
    _add_out(synth)
    synth.set_defaults(func=run_synth)


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=out_path, required=True, help=f"output folder (gets {MANIFEST_NAME})")


def _add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="fail when a labelled utterance has no audio file")


def run_iemocap(args: argparse.Namespace) -> int:
    """Read IEMOCAP from --root and write its manifest."""
    records, report = require_audio(read_iemocap(args.root, args.sessions), source=args.root, strict=args.strict)
    return _finish(records, args.out, report)


def run_manifest(args: argparse.Namespace) -> int:
    """Check a user's manifest and write it, with resolved paths, as OUT/corpus.csv (keeping its splits)."""
    records, split_of, report = read_checked_manifest(args.csv, strict=args.strict)
    return _finish(records, args.out, report, split_of)


def run_synth(args: argparse.Namespace) -> int:
    """Synthesise the espeak-ng corpus and its manifest into --out (swapped in whole over an existing one)."""
    from emodistill.corpora.synth import synthesize_corpus  # lazy: loads the espeak-ng library

    records = synthesize_corpus(args.out, preset=args.preset, seed=args.seed)  # writes its manifest too
    print(summarize(records))
    print(f"wrote {args.out / MANIFEST_NAME}")
    return 0


def _finish(records: list[Utterance], out: Path, report: LoadReport | None = None,
            split_of: dict[str, str] | None = None) -> int:
    if not records:
        raise CorpusError(f"no utterances with audio to write to {out / MANIFEST_NAME}")
    # The summary reads the header of every wav that has no duration: an unreadable one fails before any write.
    summary = summarize(records, report)
    path = write_manifest(records, out / MANIFEST_NAME, split_of)
    print(summary)
    print(f"wrote {path}")
    return 0


def summarize(records: list[Utterance], report: LoadReport | None = None) -> str:
    """A table of utterances per session and label, then speakers, hours of audio and skipped utterances."""
    lines = _count_table(records)
    # IEMOCAP and synthetic records know their duration; a user's manifest may not, and the header tells it.
    seconds = sum(r.duration if r.duration is not None else audio_duration(r.path) for r in records)
    genders = Counter(g or "?" for g in {r.speaker: r.gender for r in records}.values())
    lines.append(f"{len(records)} utterances, {len({r.speaker for r in records})} speakers "
                 f"({', '.join(f'{n} {g}' for g, n in sorted(genders.items()))}), {_span(seconds)} of audio")
    if report is not None and report.missing:
        lines.append(f"skipped: {report.describe()}")
    return "\n".join(lines)


def _count_table(records: list[Utterance]) -> list[str]:
    labels = [x for x in SUPERB_LABELS if any(r.label == x for r in records)]
    labels += sorted({r.label for r in records} - set(labels))
    counts = Counter((r.session, r.label) for r in records)
    sessions = sorted({r.session for r in records}, key=lambda s: (s is None, s or 0))
    rows = [["session", *labels, "total"]]
    for s in sessions:
        row = [counts[s, x] for x in labels]
        rows.append(["-" if s is None else str(s), *map(str, row), str(sum(row))])
    totals = [sum(counts[s, x] for s in sessions) for x in labels]
    rows.append(["all", *map(str, totals), str(len(records))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
