"""`emodistill evaluate | baselines`: score generators and real-data baselines at ppc budgets."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from emodistill import generator as generator_artifact
from emodistill.cli import add_fold_argument, command_help, out_path, seed
from emodistill.downstream import DECODERS, DEFAULT_DECODER
from emodistill.errors import ConfigError
from emodistill.evaluate.cost import audio_bytes, directory_bytes
from emodistill.evaluate.protocol import EvalConfig
from emodistill.evaluate.report import render_markdown, write_results
from emodistill.evaluate.suite import evaluate_all
from emodistill.features.splits import DataConfig
from emodistill.features.store import fold_of, load_splits, read_index, resolve_fold, train_bytes
from emodistill.files import validate
from emodistill.generator import TrainedGenerator
from emodistill.storage import check_writable

RESULTS_FILE = "results.json"


log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `evaluate` and `baselines`."""
    evaluate = subparsers.add_parser("evaluate", help=command_help("evaluate"))
    evaluate.add_argument("--generator", action="append", required=True, metavar="[NAME=]DIR",
                          help="a generator artifact; repeat to compare several (name defaults to the folder name)")
    evaluate.add_argument("--no-baselines", dest="baselines", action="store_false",
                          help="skip the random-subset and herding baselines")
    _add_protocol_args(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    baselines = subparsers.add_parser("baselines", help=command_help("baselines"))
    _add_protocol_args(baselines)
    baselines.set_defaults(func=run_evaluate, generator=[], baselines=True)


def _add_protocol_args(parser: argparse.ArgumentParser) -> None:
    defaults = EvalConfig()
    parser.add_argument("--features", type=Path, required=True, help="feature directory")
    add_fold_argument(parser)
    parser.add_argument("--budgets", type=int, nargs="+", default=defaults.budgets, metavar="N",
                        help=f"utterances per class (default: {' '.join(map(str, defaults.budgets))})")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="draws per budget (seeds)")
    parser.add_argument("--imbalanced", action=argparse.BooleanOptionalAction, default=defaults.imbalanced,
                        help="also draw each budget with the real training prior")
    parser.add_argument("--full-data", action="store_true", help="also evaluate at the real training split's size")
    parser.add_argument("--minority-budget", action="store_true",
                        help="also evaluate at ppc = the minority class's count (the balanced real subset)")
    parser.add_argument("--corpus", type=Path, help="corpus manifest CSV or folder, for the audio size")
    parser.add_argument("--out", type=out_path, default=Path("evaluation"), help="output folder (default: evaluation)")
    parser.add_argument("--downstream-steps", type=int,
                        help="downstream training steps (default: the SUPERB recipe's 30000); "
                             "dev is evaluated 10 times over them")
    parser.add_argument("--seed", type=seed, default=defaults.seed, help="base seed of the repeats")
    parser.add_argument("--device", default=defaults.downstream.device, help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--decoder", dest="decoders", action="append", choices=sorted(DECODERS), metavar="NAME",
                        help=f"downstream head to train on every draw, repeatable ({', '.join(DECODERS)}); "
                             f"{DEFAULT_DECODER} is always among them (default: only {DEFAULT_DECODER})")
    parser.add_argument("--select", default="iid", choices=["iid", "herding", "cover", "moments", "dm"],
                        help="how each budget's synthetic set is drawn from a generator (and the Gaussian, in a row "
                             "of its own): iid samples (default), or a distilled set chosen for the budget (README, "
                             "'Distilled sets')")
    parser.add_argument("--candidates", type=int, default=20,
                        help="--select herding/cover/moments: candidates drawn per kept sample (default 20)")
    parser.add_argument("--soft-labels", action="store_true",
                        help="train every source's sets (real subsets too) on the real-data reference's soft labels "
                             "instead of their labels: a regime of its own, not comparable with hard-label results")
    parser.add_argument("--augment-noise", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian feature noise in every downstream's training (in each dimension's std; "
                             "default 0: none), the same for every source")
    data = DataConfig.model_fields
    parser.add_argument("--dev-by", choices=["utterance", "speaker"],
                        help="dev split by utterance (SUPERB) or by speaker (no dev speaker in train); default: what "
                             f"the generators were trained with, else {data['dev_by'].default}")
    parser.add_argument("--normalize", choices=["none", "speaker"],
                        help="per-speaker feature normalisation of the real splits; default: what the generators "
                             f"were trained with, else {data['normalize'].default}")


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig the command-line flags describe (invalid values raise ConfigError naming the field)."""
    downstream = {"device": args.device, "augment_noise": args.augment_noise}
    if args.downstream_steps is not None:
        downstream["max_steps"] = args.downstream_steps
        downstream["eval_every"] = max(1, args.downstream_steps // 10)
    return validate({"budgets": args.budgets, "repeats": args.repeats, "imbalanced": args.imbalanced,
                     "full_data": args.full_data, "minority_budget": args.minority_budget, "seed": args.seed,
                     "downstream": downstream, "decoders": [DEFAULT_DECODER, *(args.decoders or [])],
                     "select": {"method": args.select, "candidates": args.candidates},
                     "soft_labels": args.soft_labels}, EvalConfig, "invalid evaluation settings")


def generator_dirs(specs: list[str]) -> dict[str, Path]:
    """NAME=DIR (or DIR, named after its folder) -> {name: dir}; names must be unique and dirs must exist."""
    dirs = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        path = Path(path if sep else name)
        name = name if sep else path.resolve().name
        if not name or not name.isprintable():  # it names a row of the tables and a source in results.json
            raise ConfigError(f"--generator {spec!r}: the name {name!r} is empty or holds a control character; give "
                              "one as NAME=DIR")
        if name in dirs:
            raise ConfigError(f"--generator: the name {name!r} is used twice; give each one as NAME=DIR")
        if not path.is_dir():
            raise ConfigError(f"--generator {spec}: {path} is not a directory (expected a generator artifact)")
        dirs[name] = path
    return dirs


def check_trained_fold(name: str, recorded: str | None, index: dict, fold: int | None, directory: Path,
                       data: DataConfig | None = None) -> None:
    """Refuse a generator trained on another fold of this feature directory: its training split holds this fold's
    test session, so its score would be on data it learnt from."""
    if fold is None:
        return
    if recorded is None:
        log.warning("--generator %s records no training-data fingerprint (trained on data from no feature directory, "
                    "or its config.json was edited): cannot check that it did not learn from fold %d's test session",
                    name, fold)
        return
    trained_on = fold_of(index, recorded, data)
    if trained_on is not None and trained_on != fold:
        raise ConfigError(f"--generator {name}: trained on fold {trained_on} of {directory}, whose training split "
                          f"holds fold {fold}'s test session; evaluate it with --fold {trained_on}")


def data_protocol(args: argparse.Namespace, generators: dict[str, TrainedGenerator]) -> DataConfig:
    """The data protocol of the evaluation: the one the generators were trained with (they must agree; a flag that
    differs is refused: a generator is scored on the splits and feature space it learnt), else the flags'."""
    trained = {name: DataConfig.model_validate(g.config.get("training", {}).get("data", {}))
               for name, g in generators.items()}
    if len(set(trained.values())) > 1:
        raise ConfigError("--generator: the generators were trained with different data protocols ("
                          + "; ".join(f"{name}: {data.describe()}" for name, data in trained.items())
                          + "); evaluate them separately")
    flags = {key: value for key in ("dev_by", "normalize") if (value := getattr(args, key)) is not None}
    if not trained:
        return DataConfig(**flags)
    name, data = next(iter(trained.items()))
    for key, value in flags.items():
        if getattr(data, key) != value:
            flag = key.replace("_", "-")
            raise ConfigError(f"--{flag} {value}: generator {name} was trained with {data.describe()}; drop --{flag} "
                              "to evaluate it on its own protocol")
    return data


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate the generators (none for `baselines`) and the baselines; write results.json and figures."""
    config = eval_config(args)
    check_writable(args.out)  # before the evaluation, not after it: a file or a read-only folder in the way
    dirs = generator_dirs(args.generator)
    generators = {name: generator_artifact.load(path) for name, path in dirs.items()}
    data = data_protocol(args, generators)
    index = read_index(args.features)
    fold = resolve_fold(index, args.fold, args.features)
    for name, generator in generators.items():
        check_trained_fold(name, generator.config.get("features"), index, fold, args.features, data)
    splits = load_splits(args.features, fold, data)
    audio = None if args.corpus is None else audio_bytes(args.corpus, splits["train"].utt_ids,
                                                         splits["train"].label_names)
    report = evaluate_all(splits, config, generators, baselines=args.baselines,
                          feature_bytes=train_bytes(args.features, splits["train"]),
                          audio_bytes=audio, generator_bytes={n: directory_bytes(p) for n, p in dirs.items()},
                          features=str(args.features) + ("" if fold is None else f" (fold {fold})"),
                          data=data.model_dump())
    _write_and_print(report, args.out)
    return 0


def _write_and_print(report: dict, out: Path) -> None:
    print(render_markdown(report))
    results = write_results(report, out / RESULTS_FILE)
    from emodistill.evaluate.figures import write_figures  # matplotlib only when figures are drawn

    figures = write_figures(report, out)
    print(f"wrote {results}")
    for path in figures:
        print(f"wrote {path}")
