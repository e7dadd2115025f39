"""`emodistill best|sample|ui`: query a sweep's MLflow store, sample its best generator, browse it."""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections import Counter
from pathlib import Path

from emodistill.cli import command_help, out_path, seed

# MLflow 3's UI opens in its GenAI view (traces, judges, prompts) unless the address asks for the model-training one
# (runs, their metrics and charts, models), whatever the experiments' mlflow.experimentKind tag says.
TRAINING_VIEW = "/#/experiments?workflowType=machine_learning"

# MLflow takes seconds to import, so the tracking modules are imported by the handlers that need them.


def register(subparsers) -> None:
    """Add `best`, `sample` and `ui`."""
    best = subparsers.add_parser("best", help=command_help("best"))
    _store_arguments(best)
    best.add_argument("--json", action="store_true", help="print the run as JSON")
    best.set_defaults(func=run_best)

    sample = subparsers.add_parser("sample", help=command_help("sample"))
    _store_arguments(sample)
    sample.add_argument("--ppc", type=int, required=True,
                        help="utterances per class (with --imbalanced: ppc x classes in all)")
    sample.add_argument("--imbalanced", action="store_true", help="follow the real class prior instead of equal counts")
    sample.add_argument("--champion", action="store_true", help="use the registry's champion, not the best run")
    sample.add_argument("--model-name", help="registered model name for --champion (default: the experiment)")
    sample.add_argument("--seed", type=seed, default=0)
    sample.add_argument("--batch-size", type=int, default=256,
                        help="utterances generated and written at once (bounds memory; the draw does not depend on it)")
    sample.add_argument("--out", type=out_path, required=True, help="Arrow file to write")
    distilled = sample.add_argument_group(
        "distilled sets", "a set chosen for its budget instead of i.i.d. samples, matched to the real training split "
        "the generator learnt from (README, 'Distilled sets')")
    distilled.add_argument("--select", default="iid", choices=["iid", "herding", "cover", "moments", "dm"],
                           help="iid (default): plain samples; herding / cover / moments: keep the budget among "
                                "--candidates x as many generated candidates; dm: optimise the latent codes by "
                                "distribution matching")
    distilled.add_argument("--candidates", type=int, default=20, help="candidates drawn per kept sample (default 20)")
    distilled.add_argument("--features", type=Path, help="the feature directory the generator learnt from (needed "
                                                        "by every --select but iid)")
    distilled.add_argument("--fold", type=int, help="its fold (default: the one the generator recorded)")
    sample.set_defaults(func=run_sample)

    ui = subparsers.add_parser("ui", help=command_help("ui"))
    ui.add_argument("--tracking-uri", help="sqlite store (default: $MLFLOW_TRACKING_URI or ./mlruns.db)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="interface to bind (default: loopback only); any other turns authentication on")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--auth", action="store_true",
                    help="require a user and password (MLflow basic auth) even on loopback")
    ui.add_argument("--create", action="store_true",
                    help="start an empty store when the sqlite file does not exist (for a server sweeps will log to)")
    ui.add_argument("--artifacts-destination", metavar="DIR|URI",
                    help="where the server keeps the artifacts it serves: a folder or an object-storage URI such as "
                         "s3://bucket/mlartifacts, reached with the server's AWS_* / MLFLOW_S3_ENDPOINT_URL "
                         "(default: mlartifacts/ beside the sqlite store)")
    ui.set_defaults(func=run_ui)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    """--experiment, --metric, --tracking-uri."""
    parser.add_argument("--experiment", required=True, help="experiment (sweep) name")
    parser.add_argument("--metric", help="metric to maximise (default: the objective the sweep recorded, e.g. "
                                         "dev_uar_ppc100)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlruns.db)")


def run_best(args: argparse.Namespace) -> int:
    """Print the best run's id, name, params and metrics."""
    from emodistill.tracking.best import best_run, sweep_objective

    metric = args.metric or sweep_objective(args.experiment, args.tracking_uri)
    run = best_run(args.experiment, metric, args.tracking_uri)
    summary = {
        "experiment": args.experiment,
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "metric": metric,
        "value": run.data.metrics[metric],
        "metrics": dict(sorted(run.data.metrics.items())),
        "params": dict(sorted(run.data.params.items())),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"best run of {args.experiment!r} by {metric}: {summary['run_id']} ({summary['run_name']}), "
          f"{metric} = {summary['value']:.4f}")
    for section in ("metrics", "params"):
        print(f"{section}:")
        for key, value in summary[section].items():
            print(f"  {key} = {value}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    """Stream a synthetic table drawn from the best (or champion) generator to disk; print its counts per label."""
    from emodistill.features.store import read_table
    from emodistill.tracking.best import best_generator

    generator = best_generator(args.experiment, args.metric, args.tracking_uri, champion=args.champion,
                               model_name=args.model_name)
    n_classes = len(generator.label_names)
    draw = {"ppc": 0, "balanced": False, "total": args.ppc * n_classes} if args.imbalanced else {"ppc": args.ppc}
    if args.select == "iid" and args.features is None:
        path = generator.write_sample(args.out, seed=args.seed, batch_size=args.batch_size, progress=True, **draw)
    else:
        path = _write_distilled(generator, args, draw)
    counts = Counter(read_table(path).column("label").to_pylist())
    per_label = ", ".join(f"{label} {counts[label]}" for label in generator.label_names)
    print(f"wrote {sum(counts.values())} synthetic utterances to {path}: {per_label}")
    return 0


def _write_distilled(generator, args: argparse.Namespace, draw: dict) -> Path:
    """A distilled set (--select) of the budget, chosen against the real split the generator learnt from."""
    from emodistill.distilled import SetSpec, write_distilled_set
    from emodistill.distilled.sets import embedding_model, trained_splits
    from emodistill.errors import ConfigError
    from emodistill.generator import class_counts

    if args.features is None:
        raise ConfigError(f"--select {args.select}: needs --features, the feature directory the generator learnt "
                          "from (the set is matched to its real training split)")
    if args.candidates < 1:
        raise ConfigError(f"--candidates must be >= 1, got {args.candidates}")
    splits = trained_splits(generator, args.features, args.fold)
    counts = class_counts(draw["ppc"], generator.label_names, generator.class_prior, draw.get("balanced", True),
                          draw.get("total"))
    spec = SetSpec(method=args.select, candidates=args.candidates, seed=args.seed)
    embedding = None if args.select == "iid" else embedding_model(splits["train"], splits["dev"], args.seed)
    return write_distilled_set(generator, splits["train"], dict(zip(generator.label_names, counts.tolist())), spec,
                               args.out, embedding)


def run_ui(args: argparse.Namespace) -> int:
    """Serve the store until Ctrl-C, then stop the server and everything it spawned."""
    from emodistill.tracking.server import is_loopback, start_server
    from emodistill.tracking.uris import check_existing_store, resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(args.tracking_uri)
    creating = args.create and uri.startswith("sqlite:") and not sqlite_path(uri).exists()
    if not creating:
        # The server would write MLflow's schema into a mistyped path or a foreign file.
        check_existing_store(uri, hint="check --tracking-uri, or pass --create to start a new store")
    # The server runs in its own session, so a SIGTERM to us would orphan it: treat it like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    auth = args.auth or not is_loopback(args.host)
    with start_server(uri, host=args.host, port=args.port, artifacts_destination=args.artifacts_destination,
                      auth=auth) as server:
        try:  # from the first line printed on: whoever reads it may stop us at once
            print(f"MLflow UI at {server.url}{TRAINING_VIEW} (Ctrl-C to stop; log {server.log_path})", flush=True)
            if auth:
                print(f"basic auth on: user admin, password in {server.password_file}; clients (sweeps, "
                      "best_generator) need MLFLOW_TRACKING_USERNAME=admin and MLFLOW_TRACKING_PASSWORD set",
                      flush=True)
            while server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            return 0
        print(f"mlflow server exited with code {server.process.returncode}:\n{server.log_tail()}")
        return 1
