"""Entry point of the `emodistill` command: dispatch to the stage subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from emodistill import __version__
from emodistill.cli import COMMANDS, command_help
from emodistill.errors import EmodistillError

# Each module defines `register(subparsers)`, adding its subcommand(s) with `set_defaults(func=...)`.
COMMAND_MODULES = {command: module for command, (module, _) in COMMANDS.items()}
DESCRIPTION = ("Distil a speech-emotion corpus into a small conditional generator: "
               "corpus -> features -> distill -> evaluate -> sweep -> best/sample/ui.")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: only the subcommands of `command`'s module when it is known, every stage's for an
    unknown one (argparse then lists the choices), bare command names when there is none."""
    parser = argparse.ArgumentParser(prog="emodistill", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"emodistill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command is None:  # `emodistill --help` or no command: the list of commands, without importing them
        for name in COMMANDS:
            sub.add_parser(name, help=command_help(name))
        return parser
    modules = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for name in dict.fromkeys(modules):
        importlib.import_module(name).register(sub)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def printable(text: str) -> str:
    """`text` with the bytes of non-UTF-8 file names (held by Python as surrogates) shown as escapes (\\xe9)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input exits 2 with a one-line reason."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_of(argv)).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except EmodistillError as exc:
        print(f"emodistill {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emodistill {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
