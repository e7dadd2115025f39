"""Entry point of the `emodistill` command: dispatch to the stage subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from emodistill import __version__
from emodistill.cli import COMMANDS, command_help
from emodistill.errors import EmodistillError, external_problem, is_mlflow_error, one_line

# Each module defines `register(subparsers)`, adding its subcommand(s) with `set_defaults(func=...)`.
COMMAND_MODULES = {command: module for command, (module, _) in COMMANDS.items()}
# What libraries print that says nothing about the run, off unless --verbose (a user's own setting wins). Set in
# the environment, so that MLflow reads it when it is imported and the processes of a local Ray cluster inherit it.
QUIET_ENVIRONMENT = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Creating initial MLflow database tables...", "Validating input example..."
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a bar for every download of a file or two
    # Tune snapshots its state at every checkpoint because CheckpointConfig(num_to_keep) bounds the disk a sweep
    # takes, and warns when that happens more than once in 5 s: harmless at one report per evaluation round.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
# Loggers whose warnings only precede what emodistill then says itself, shown with --verbose:
QUIET_LOGGERS = (
    # Ray's notice, at every local start, that it turned token authentication on: emodistill wants it on (README,
    # "Security"), and refuses to start a local cluster with it off;
    "ray._private.authentication.authentication_token_setup",
    # the retries of a request to a tracking server that does not answer (the error names the server);
    "urllib3.connectionpool",
    # MLflow's failure to build a Databricks client (the error that follows says what is missing).
    "mlflow.utils.databricks_utils",
)
DESCRIPTION = ("Distil a speech-emotion corpus into a small conditional generator: "
               "corpus -> features -> distill -> evaluate -> sweep -> best/sample/ui.")


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, like every other bad input's (argparse prints its usage first)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {printable(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: only the subcommands of `command`'s module when it is known, every stage's for an
    unknown one (argparse then lists the choices), bare command names when there is none."""
    parser = OneLineParser(prog="emodistill", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"emodistill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="everything: debug messages, every library's logs, warnings and progress bars, Tune's "
                             "status tables")
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


def configure_output(verbose: bool) -> None:
    """Log emodistill's progress, and only warnings of the libraries; with `verbose`, everything at DEBUG."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not verbose:
        logging.getLogger("emodistill").setLevel(logging.INFO)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        for name, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input exits 2 with a one-line reason."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_of(argv)).parse_args(argv)
    configure_output(args.verbose)
    from emodistill.files import sigterm_unwinds

    try:
        with sigterm_unwinds():  # a service manager's SIGTERM runs the cleanup Ctrl+C runs (temporary folders too)
            return int(args.func(args) or 0)
    except EmodistillError as exc:
        return _fail(args.command, str(exc))
    except KeyboardInterrupt:
        print(f"emodistill {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one boundary: a user's problem or a bug, never a bare traceback
        problem = external_problem(exc, _culprit(args, exc))
        if problem is not None:
            return _fail(args.command, problem)
        if args.verbose:
            traceback.print_exc()
        print(f"emodistill {args.command}: internal error: {type(exc).__name__}: {printable(one_line(exc))} "
              "(a bug in emodistill: run again with --verbose for the traceback, and report it)", file=sys.stderr)
        return 1


def _fail(command: str, problem: str) -> int:
    """Print the one-line reason of a failure the user can fix; its exit status."""
    print(f"emodistill {command}: error: {printable(problem)}", file=sys.stderr)
    return 2


def _culprit(args: argparse.Namespace, exc: Exception) -> str | None:
    """What an error that names no path is about: the tracking store for MLflow's, the command's output for a
    system error (pyarrow's write errors name no file), nothing for others."""
    if is_mlflow_error(exc):
        return getattr(args, "tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
    out = getattr(args, "out", None)
    return str(out) if isinstance(exc, OSError) and out is not None else None


if __name__ == "__main__":
    sys.exit(main())
