"""`emodistill report`: a sweep's report from its MLflow runs, or the tables of an evaluation's results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from emodistill.cli import command_help


def register(subparsers) -> None:
    """Add `report`."""
    report = subparsers.add_parser("report", help=command_help("report"))
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", help="a sweep's experiment: its latest sweep's report (UAR per setting and "
                                             "budget, as the sweep logged to its parent run)")
    source.add_argument("--results", type=Path, help="a results.json written by `emodistill evaluate`")
    report.add_argument("--tracking-uri", help="MLflow store of --experiment (default: $MLFLOW_TRACKING_URI or "
                                               "./mlruns.db)")
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Print the report as markdown."""
    if args.results is not None:
        from emodistill.evaluate.report import read_results, render_markdown

        print(render_markdown(read_results(args.results)), end="")
        return 0
    from emodistill.sweep.report import load_report, to_markdown  # Ray, MLflow and torch take seconds to import
    from emodistill.tracking.store import failing_fast

    with failing_fast(args.tracking_uri):
        print(to_markdown(load_report(args.experiment, args.tracking_uri)), end="")
    return 0
