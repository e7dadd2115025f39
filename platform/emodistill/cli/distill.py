"""`emodistill distill`: train a generator on a feature directory's train split."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from emodistill import generator
from emodistill.cli import add_fold_argument, command_help, out_path
from emodistill.distill import distill, load_config
from emodistill.distill.config import preset_names
from emodistill.downstream import DECODERS, DownstreamConfig
from emodistill.errors import ConfigError
from emodistill.evaluate.protocol import SELECT_DECODER, dev_selection, selection_metric
from emodistill.features.store import dataset_fingerprint, load_splits
from emodistill.generator.sampling import check_sample_memory
from emodistill.runtime import cache_dir


def register(subparsers) -> None:
    """Add `distill`."""
    parser = subparsers.add_parser("distill", help=command_help("distill"))
    parser.add_argument("--features", required=True, type=Path, help="feature directory")
    add_fold_argument(parser)
    parser.add_argument("--config", default="small",
                        help=f"YAML/JSON config file or preset name ({', '.join(preset_names())}; default small)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set loss.lambda_sml=1 (repeatable)")
    parser.add_argument("--out", type=out_path, default=Path("runs/distill"),
                        help="run directory (default runs/distill)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out (its generator and checkpoints); without it, or "
                             "--resume, a folder holding a run is refused")
    parser.add_argument("--pool-cache", default=None, metavar="DIR|URI",
                        help="cache of downstream pools for L_SML, a folder or an object-storage URI (default "
                             "pools/ in $EMODISTILL_CACHE, else $XDG_CACHE_HOME/emodistill or ~/.cache/emodistill)")
    select = parser.add_argument_group(
        "checkpoint selection", "every train.eval_every steps the generator is scored on the real DEV split (never "
        "on test) and the best-scoring one is saved; with train.eval_every 0 the last one is")
    select.add_argument("--select-ppc", type=int, default=100, metavar="N",
                        help="samples per class each scoring downstream trains on (default 100)")
    select.add_argument("--select-draws", type=int, default=2, metavar="K",
                        help="samples and downstreams averaged per scoring, against the luck of a draw (default 2)")
    select.add_argument("--select-downstream-steps", type=int, default=1000, metavar="S",
                        help="steps of each scoring downstream, dev checked 10 times (default 1000)")
    select.add_argument("--select-decoder", choices=list(DECODERS), default=SELECT_DECODER,
                        help=f"the scoring downstream's head (default {SELECT_DECODER}: it reads each sample's mean "
                             "frame and its spread over time; the linear head reads the mean only, which the `small` "
                             "preset's mean path fixes, so it scores every checkpoint alike; benchmarks/RESULTS.md)")
    parser.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """Print the config, train with a progress bar (choosing the checkpoint on dev), report the written generator."""
    config = load_config(args.config, args.overrides)
    for flag in ("select_ppc", "select_draws", "select_downstream_steps"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    splits = load_splits(args.features, args.fold, config.data)
    train = splits["train"]  # the dev selection's samples are drawn at once: refused before training if too many
    check_sample_memory(args.select_ppc * len(train.label_names), config.model.frames, train.dim,
                        f"dev selection (--select-ppc {args.select_ppc}, model.frames {config.model.frames})")
    print(f"config ({args.config}):")
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).rstrip())
    downstream = DownstreamConfig(max_steps=args.select_downstream_steps, decoder=args.select_decoder,
                                  eval_every=max(1, args.select_downstream_steps // 10), device=config.train.device)
    evaluate = dev_selection(splits["train"], splits["dev"], args.select_ppc, args.select_draws, downstream,
                             seed=config.train.seed)
    metric = selection_metric(args.select_ppc, args.select_decoder)
    selection = {"draws": args.select_draws, "downstream_steps": args.select_downstream_steps}
    path = distill(splits["train"], splits["dev"], config, args.out, resume=args.resume, overwrite=args.overwrite,
                   pool_cache_dir=args.pool_cache or cache_dir("pools"),
                   features_fingerprint=dataset_fingerprint(args.features, args.fold, config.data), evaluate=evaluate,
                   select=metric, selection=selection)
    written = generator.read_config(path)
    weights_mb = (path / generator.WEIGHTS_FILE).stat().st_size / 1e6
    metrics = written["metrics"]
    chosen = (f"; chosen at step {metrics['selected_step']} of {metrics['steps']} by {metric} = {metrics[metric]:.4f}"
              if "selected_step" in metrics else "")
    print(f"generator written to {path}: {written['num_parameters']:,} parameters, {weights_mb:.2f} MB of "
          f"weights{chosen}")
    return 0
