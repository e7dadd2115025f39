"""`emodistill distill`: train a generator on a feature directory's train split."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from emodistill import generator
from emodistill.distill import distill, load_config
from emodistill.distill.config import preset_names
from emodistill.features.store import dataset_fingerprint, load_splits
from emodistill.runtime import cache_dir


def register(subparsers) -> None:
    """Add `distill`."""
    parser = subparsers.add_parser("distill", help="distil a feature table into a generator (GAN training)")
    parser.add_argument("--features", required=True, type=Path, help="feature directory (train/dev/test tables)")
    parser.add_argument("--config", default="small",
                        help=f"YAML/JSON config file or preset name ({', '.join(preset_names())}; default small)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set loss.lambda_sml=1 (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/distill"), help="run directory (default runs/distill)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    parser.add_argument("--pool-cache", type=Path, default=None,
                        help=f"cache of downstream pools for L_SML (default {cache_dir('pools')})")
    parser.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """Print the config, train with a progress bar, report the written generator."""
    config = load_config(args.config, args.overrides)
    splits = load_splits(args.features)
    print(f"config ({args.config}):")
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).rstrip())
    path = distill(splits["train"], splits["dev"], config, args.out, resume=args.resume,
                   pool_cache_dir=args.pool_cache or cache_dir("pools"),
                   pool_fingerprint=dataset_fingerprint(args.features))
    n_parameters = generator.read_config(path)["num_parameters"]
    weights_mb = (path / generator.WEIGHTS_FILE).stat().st_size / 1e6
    print(f"generator written to {path}: {n_parameters:,} parameters, {weights_mb:.2f} MB of weights")
    return 0
