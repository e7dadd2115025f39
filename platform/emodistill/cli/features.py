"""`emodistill features extract|info`: corpus manifest -> Arrow feature tables, and their summary."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from emodistill.cli import command_help, out_path, seed
from emodistill.corpora.manifest import group_by_split, manifest_path, read_checked_manifest
from emodistill.errors import ConfigError
from emodistill.features.extract import extract_features
from emodistill.features.store import INDEX_NAME, open_tables, read_index, table_entries, verify_tables
from emodistill.features.upstream import make_upstream


def register(subparsers) -> None:
    """Add `features extract` and `features info`."""
    parser = subparsers.add_parser("features", help=command_help("features"))
    sub = parser.add_subparsers(dest="features_command", required=True, metavar="SUBCOMMAND")

    extract = sub.add_parser("extract", help="extract the feature table of a corpus manifest (runs choose its fold "
                                             "with --fold; a manifest's split column fixes train/dev/test instead)")
    extract.add_argument("--corpus", required=True, type=Path, help="corpus.csv, or a directory holding one")
    extract.add_argument("--out", required=True, type=out_path, help="feature directory to write")
    extract.add_argument("--upstream", choices=("fbank", "hf"), default="fbank")
    extract.add_argument("--model", help="Hugging Face model directory or hub name (--upstream hf)")
    extract.add_argument("--layer", default=None, help="hidden layer: an index or 'last' (--upstream hf; default last)")
    extract.add_argument("--dev-fraction", type=float, default=0.2,
                         help="share of the sessions other than a fold's test session for dev (default 0.2)")
    extract.add_argument("--seed", type=seed, default=0, help="seed of every fold's train/dev cut (default 0)")
    extract.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    extract.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (--upstream hf)")
    extract.add_argument("--batch-size", type=int, help="utterances per forward pass (--upstream hf; default 8)")
    extract.add_argument("--allow-pickle", action="store_true",
                         help="load a model directory that has only pickle-based weights (--upstream hf; they can "
                              "run code as they load: only a model you trust)")
    extract.add_argument("--corpus-name", help="name recorded in the tables (default: the corpus directory name)")
    extract.set_defaults(func=run_extract)

    info = sub.add_parser("info", help="summarise a feature directory (its tables are opened and checked against "
                                       "the index)")
    info.add_argument("dir", type=Path, help="feature directory")
    info.add_argument("--verify", action="store_true",
                      help="also read every frame and check each table's content fingerprint against the index")
    info.set_defaults(func=run_info)


def _upstream(args: argparse.Namespace):
    """The upstream named by --upstream, rejecting options it does not use."""
    if args.upstream == "fbank":
        if args.model is not None or args.layer is not None or args.batch_size is not None or args.allow_pickle:
            raise ConfigError("--model, --layer, --batch-size and --allow-pickle apply to --upstream hf only")
        return make_upstream("fbank")
    if args.model is None:
        raise ConfigError("--upstream hf needs --model (a Hugging Face model directory or hub name)")
    options = {"batch_size": args.batch_size} if args.batch_size is not None else {}
    return make_upstream("hf", model=args.model, layer=args.layer or "last", device=args.device,
                         allow_pickle=args.allow_pickle, **options)


def run_extract(args: argparse.Namespace) -> int:
    """Extract the features and print their summary."""
    csv_path = manifest_path(args.corpus)
    kept, split_of, _ = read_checked_manifest(csv_path, strict=True)
    # A `split` column in the manifest fixes the splits; otherwise runs choose a leave-one-session-out fold.
    records = kept if split_of is None else group_by_split(kept, split_of)
    upstream = _upstream(args)
    name = args.corpus_name or csv_path.resolve().parent.name
    index = extract_features(records, upstream, args.out, name, dtype=args.dtype, dev_fraction=args.dev_fraction,
                             seed=args.seed)
    print(format_summary(index, args.out))
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print the summary recorded in a feature directory's index, once its tables open and match it."""
    index = read_index(args.dir)
    if args.verify:
        verify_tables(args.dir)  # opens every table, as below, then recomputes its fingerprint
    else:
        open_tables(args.dir)  # a truncated, replaced or unreadable table fails here, naming it
    print(format_summary(index, args.dir))
    if args.verify:
        print("  verified: every table's content matches the fingerprint recorded in its index")
    return 0


def format_summary(index: dict, directory: Path) -> str:
    """Per table: utterances per label, hours of audio, frames, bytes, fingerprint; the folds, if any."""
    meta = index["meta"]
    layer = "" if meta["layer"] is None else f" layer {meta['layer']}"
    lines = [f"{directory}: corpus {meta['corpus']}, upstream {meta['upstream']}{layer}, "
             f"D={meta['dim']}, {meta['frame_rate']:g} frames/s, {meta['dtype']}"]
    for split, s in table_entries(index).items():
        counts = " ".join(f"{label}={n}" for label, n in s["counts"].items())
        audio = "?" if s["seconds"] is None else str(timedelta(seconds=round(s["seconds"])))
        lines.append(f"  {split:<5} {s['utterances']:>6} utts ({counts}), {audio} h:m:s of audio, "
                     f"{s['frames']} frames, {s['bytes'] / 2**20:.1f} MiB, fingerprint {s['fingerprint']}")
    folds = index.get("folds")
    if folds is not None:
        sessions = ", ".join(f"{s}: {n}" for s, n in folds["sessions"].items())
        lines.append(f"  folds {', '.join(folds['sessions'])} (utterances per session {sessions}): fold K tests on "
                     f"session K, the others cut {1 - folds['dev_fraction']:g}/{folds['dev_fraction']:g} into "
                     f"train/dev (seed {folds['seed']}); choose one with --fold (default 1, or the lowest session)")
    lines.append(f"  dataset fingerprint {index['fingerprint']}; index {Path(directory) / INDEX_NAME}")
    return "\n".join(lines)
