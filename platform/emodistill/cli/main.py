"""Entry point of the `emodistill` command: dispatch to the stage subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from emodistill import __version__
from emodistill.errors import EmodistillError

# Each module defines `register(subparsers)`, adding its subcommand(s) with `set_defaults(func=...)`.
COMMAND_MODULES = (
    "emodistill.cli.corpus",
    "emodistill.cli.features",
    "emodistill.cli.distill",
    "emodistill.cli.evaluate",
    "emodistill.cli.sweep",
    "emodistill.cli.tracking",
)
DESCRIPTION = ("Distil a speech-emotion corpus into a small conditional generator: "
               "corpus -> features -> distill -> evaluate -> sweep -> best/sample/ui.")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(prog="emodistill", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"emodistill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input exits 2 with a one-line reason."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except EmodistillError as exc:
        print(f"emodistill {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emodistill {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
