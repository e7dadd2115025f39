"""The `emodistill` command line: one subcommand module per pipeline stage."""

from __future__ import annotations

from pathlib import Path

# Command -> (the module that registers it, its line in `emodistill --help`). Spelled out here so that one command
# imports only its own module, and `emodistill --help` imports none: torch, Ray and MLflow take seconds to import
# (tests check this map against the modules).
COMMANDS = {
    "corpus": ("emodistill.cli.corpus", "read a corpus and write its manifest (OUT/corpus.csv)"),
    "features": ("emodistill.cli.features", "extract upstream features into Arrow tables"),
    "distill": ("emodistill.cli.distill", "distil a feature table into a generator (GAN training)"),
    "evaluate": ("emodistill.cli.evaluate", "score generators against the real data and the baselines"),
    "baselines": ("emodistill.cli.evaluate", "score the real-data baselines alone"),
    "report": ("emodistill.cli.report", "print a sweep's report (test UAR by setting and budget) or a results.json"),
    "sweep": ("emodistill.cli.sweep", "run a hyper-parameter sweep of distillations on Ray Tune"),
    "demo": ("emodistill.cli.sweep", "synthetic corpus -> fbank features -> smoke sweep -> best generator"),
    "best": ("emodistill.cli.tracking", "show the best finished trial of a sweep"),
    "sample": ("emodistill.cli.tracking", "sample a synthetic feature table from a sweep's best generator"),
    "ui": ("emodistill.cli.tracking", "serve the MLflow UI on the tracking store until Ctrl-C"),
}


def command_help(command: str) -> str:
    """The one-line help of `command`."""
    return COMMANDS[command][1]


def seed(text: str) -> int:
    """argparse type of a --seed: an integer in [0, 2^32), the range configs take (strict.Seed)."""
    import argparse

    from emodistill.strict import SEED_LIMIT

    value = int(text)  # argparse names a ValueError as "invalid seed value"
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2^32), got {text!r}")
    return value


def out_path(text: str) -> Path:
    """argparse type of an --out: a path whose name is UTF-8 (what was written there must open again: the manifest,
    Arrow and safetensors readers take UTF-8 paths only)."""
    import argparse

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # the parser's error line shows its bytes as escapes (main.printable)
        raise argparse.ArgumentTypeError(f"{text} is not valid UTF-8: choose a UTF-8 name") from None
    return Path(text)


def add_fold_argument(parser) -> None:
    """--fold K, for a command that loads a feature directory's splits."""
    parser.add_argument("--fold", type=int, default=None, metavar="K",
                        help="leave-one-session-out fold: test on session K, train/dev on the others (default 1, or "
                             "the lowest session; not for features whose manifest fixed the splits)")
