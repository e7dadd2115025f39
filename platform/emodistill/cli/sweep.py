"""`emodistill sweep|demo`: run a search space on Ray Tune, or the whole pipeline on the embedded corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from emodistill.cli import command_help, out_path
from emodistill.errors import ConfigError

# The bundled spaces live at the top of a source checkout (the demo and `ray job submit --working-dir .`).
SPACES_DIR = Path(__file__).resolve().parents[3] / "search_spaces"
DEMO_SAMPLE_PPC = 10


def register(subparsers) -> None:
    """Add `sweep` and `demo`."""
    sweep = subparsers.add_parser("sweep", help=command_help("sweep"))
    sweep.add_argument("--space", type=Path, help="search-space YAML (e.g. search_spaces/smoke.yaml)")
    sweep.add_argument("--features", type=Path, help="feature directory (train/dev/test.arrow + features.json)")
    # --experiment, as `best`, `sample` and `report` call it; --name is what earlier versions took.
    sweep.add_argument("--experiment", "--name", dest="experiment",
                       help="sweep = MLflow experiment = registered model name (default: the space's name)")
    _common_arguments(sweep)
    sweep.add_argument("--storage-path", default="sweeps", metavar="DIR|URI",
                       help="Tune checkpoints and the sweep's state: a folder, or on several machines an "
                            "object-storage URI such as s3://bucket/sweeps (credentials and endpoint from AWS_* or "
                            "the cloud's usual variables; default: ./sweeps)")
    sweep.add_argument("--resume", metavar="DIR|URI", help="continue the interrupted sweep in DIR|URI (the Tune "
                                                           "experiment path it printed)")
    sweep.add_argument("--trust-unverified", action="store_true",
                       help="with --resume: resume even if the state files were written after the sweep last "
                            "recorded their digests (its driver died); only where nobody else can write")
    sweep.set_defaults(func=run_sweep_command)

    demo = subparsers.add_parser("demo", help=command_help("demo"))
    demo.add_argument("--out", type=out_path, default=Path("emodistill-demo"), help="folder for everything it writes")
    demo.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local one)")
    demo.add_argument("--preset", default="small",
                      help="embedded corpus to synthesise: small (1000 utterances, default) or tiny (100, a quick "
                           "check that everything runs)")
    demo.set_defaults(func=run_demo)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlruns.db); "
                                               "an http:// server when the Ray cluster has several nodes")
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local one)")


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep and print its trials, best run and registration."""
    from emodistill.sweep import resume_sweep, run_sweep  # Ray and MLflow take seconds to import

    if args.resume:
        if args.space or args.features or args.experiment or args.tracking_uri:
            raise ConfigError("--resume takes the sweep's settings from its sweep.json; "
                              "drop --space, --features, --experiment and --tracking-uri")
        result = resume_sweep(args.resume, address=args.address, trust_unverified=args.trust_unverified)
    else:
        if args.space is None or args.features is None:
            raise ConfigError("sweep needs --space FILE and --features DIR (or --resume DIR|URI)")
        result = run_sweep(args.space, args.features, name=args.experiment, tracking_uri=args.tracking_uri,
                           storage_path=args.storage_path, address=args.address, verbose=args.verbose)
    print(format_result(result))
    if result.interrupted:
        return 130
    if not result.best_run_id:
        return 1
    print_report(result)
    return 0


def format_result(result) -> str:
    """The sweep's trials, best run, champion and where everything is."""
    if result.interrupted:
        return (f"sweep {result.name} interrupted; nothing was finalised. Continue it with:\n"
                f"  emodistill sweep --resume {result.experiment_path}")
    lines = [f"sweep {result.name}: {len(result.trials)} trial(s), objective {result.objective}"]
    for name, trial in result.trials.items():
        value = trial[result.objective]
        shown = "-" if value is None else f"{value:.4f}"
        reason = f"  ({trial['reason']})" if trial["reason"] else ""
        lines.append(f"  {name:<32} {trial['variant'] or '':<12} {trial['status']:<9} {shown}{reason}")
    if result.best_run_id:
        lines.append(f"best run {result.best_run_id}: {result.objective} = {result.best_value:.4f}; "
                     f"registered as {result.name} version {result.champion_version} (alias champion)")
    else:
        lines.append("no trial finished: nothing registered")
    lines.append(f"MLflow: {result.tracking_uri} (experiment {result.name}, parent run {result.parent_run_id})")
    lines.append(f"Tune experiment: {result.experiment_path}")
    return "\n".join(lines)


def print_report(result) -> None:
    """The sweep's results table, as its parent run's description and `emodistill report` show it."""
    from emodistill.sweep.report import load_report, results_markdown

    print(results_markdown(load_report(result.name, result.tracking_uri)), end="")


def run_demo(args: argparse.Namespace) -> int:
    """Corpus synth (--preset) -> fbank features -> smoke sweep -> best generator -> a sampled table."""
    from emodistill.features.extract import embedded_features
    from emodistill.sweep import run_sweep
    from emodistill.tracking.best import best_generator

    started = time.perf_counter()
    out = args.out.resolve()
    features = embedded_features(out, args.preset)
    space = SPACES_DIR / "smoke.yaml"
    if not space.is_file():
        raise ConfigError(f"{space}: the smoke search space is missing; run the demo from a source checkout")
    tracking_uri = f"sqlite:///{out / 'mlruns.db'}"
    result = run_sweep(space, features, name="demo", tracking_uri=tracking_uri, storage_path=out / "sweeps",
                       pool_cache_dir=out / "pool-cache", address=args.address, verbose=args.verbose)
    print(format_result(result))
    if result.interrupted:
        return 130
    if not result.best_run_id:
        return 1
    print_report(result)
    generator = best_generator(result.name, metric=result.objective, tracking_uri=tracking_uri)
    sample = generator.write_sample(out / "synthetic.arrow", DEMO_SAMPLE_PPC, seed=0)
    print(f"sampled {DEMO_SAMPLE_PPC} utterances per class from the best generator: {sample}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; everything is under {out}")
    print(f"open the MLflow UI: emodistill ui --tracking-uri {tracking_uri}")
    return 0
