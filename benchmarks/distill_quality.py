"""Does a distilled generator train a classifier as well as real data, on corpora it was not tuned on?

    python benchmarks/distill_quality.py [--draws small:1:1,small:2:2,default:0:3] [--seeds 3] [--protocol P]
        [--budgets ppc10 ppc50 ppc100 full] [--decoders linear attentive ...] [--variants ...] [--protocols]
        [--workers 2] [--work DIR] [--steps N] [--no-write]

Every draw (an embedded corpus preset synthesised with a seed, tested on one fold) is scored on its own and all
draws together: for each budget (per class, balanced; `full`: the real training split's size) a downstream is
trained on one source only, its checkpoint chosen on the real dev split, and scored on the real test split (UAR and
accuracy). Sources: the real training split (the reference), the selection ladder (random subset, herding,
k-means, k-center, in the embedding of the seed-0 real-data downstream), the class-conditional Gaussian, and GAN-ATT
trained with the `small` preset as the Baseline WGAN-GP (λ5 = λ6 = 0) and +L_DIV+L_SML, each checkpoint chosen on
dev by `emodistill distill`'s default head, the mean+std MLP (--variants adds +L_SML, the Baseline and the recipe
chosen by the linear head instead, the recipe with an L_SML pool of mean+std MLPs, and the recipe trained for twice
the preset's steps).
A seed varies a generator's training, its samples and the downstream's initialisation together. Every generator
keeps the checkpoint that scored best on dev; its learning curve records dev and test UAR at each evaluation (test
is only recorded). Cells are the mean ± 95 % CI over draws x seeds, with each draw's own value in its table. The
linear head is scored at every budget, the other decoders at ppc10, ppc100 and full (the cross-decoder table,
each decoder against its own real-full score). With --protocols, the recipe is also trained and scored at ppc100
under each data protocol (dev split by utterance or speaker, with and without per-speaker normalisation).

It writes benchmarks/results/distill_quality.json, the figures under benchmarks/figures/, and the section between
the `distill_quality` markers of benchmarks/RESULTS.md (not with --no-write); it prints the same tables and its CPU
time, and keeps every run's JSON in the --work folder too (distill_quality.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from draws import (PROTOCOLS, Draw, budget_counts, cpu_seconds, median_p, paired_difference, parse_draws,  # noqa: E402
                   pct, points, prepare, protocol_seed, rebuild, results, score, splits, summary, train_generator)

from emodistill.distill import load_config  # noqa: E402
from emodistill.downstream import DECODERS, embed_set  # noqa: E402
from emodistill.evaluate.protocol import SELECT_DECODER  # noqa: E402
from emodistill.evaluate.baselines import (class_herding_orders, class_orders, gaussian_baseline,  # noqa: E402
                                           kcenter_order, kmeans_draw, random_subset)
from emodistill.generator import load  # noqa: E402

DEFAULT_DRAWS = "small:1:1,small:2:2,default:0:3"
PRESET = "small"  # the recipe; its file says what it adds beyond the paper
BUDGETS = ("ppc10", "ppc50", "ppc100", "full")
CROSS_BUDGETS = ("ppc10", "ppc100", "full")  # where every decoder is scored
BASELINE, SML, DIV_SML = "Baseline WGAN-GP", "+L_SML", "+L_DIV+L_SML"
BASELINE_LIN, DIV_SML_LIN = "Baseline WGAN-GP, chosen by linear", "+L_DIV+L_SML, chosen by linear"
DIV_SML_MSP = "+L_DIV+L_SML, mean+std pool"
DIV_SML_LONG = "+L_DIV+L_SML, 800 steps"


class Variant(NamedTuple):
    """A generator of the benchmark: the preset's overrides, and the decoder that chooses its checkpoint on dev
    (`emodistill distill`'s default, SELECT_DECODER, unless named)."""

    overrides: list[str]
    choose_by: str = SELECT_DECODER


VARIANTS = {  # the paper's Table 2 rows, on GAN-ATT
    BASELINE: Variant(["loss.lambda_div=0", "loss.lambda_sml=0"]),
    SML: Variant(["loss.lambda_div=0", "loss.lambda_sml=1"]),
    DIV_SML: Variant(["loss.lambda_div=1", "loss.lambda_sml=1"]),
    # The earlier choice: the linear head reads the mean frame only, which the preset's mean path fixes, so it
    # scores every checkpoint alike and keeps the first; McNemar compares each with the Baseline chosen the same way.
    BASELINE_LIN: Variant(["loss.lambda_div=0", "loss.lambda_sml=0"], "linear"),
    DIV_SML_LIN: Variant(["loss.lambda_div=1", "loss.lambda_sml=1"], "linear"),
    # What a pool of the choosing decoder adds to L_SML over the preset's pool of linear heads.
    DIV_SML_MSP: Variant(["loss.lambda_div=1", "loss.lambda_sml=1", "pool.downstream.decoder=mean_std_mlp"]),
    # Twice the preset's steps, evaluated as often (8 times): chosen by the mean+std MLP, every curve still rises at
    # the preset's last step.
    DIV_SML_LONG: Variant(["loss.lambda_div=1", "loss.lambda_sml=1", "train.steps=800", "train.eval_every=100",
                           "train.checkpoint_every=100"]),
}
REAL, RANDOM, HERDING, KMEANS, KCENTER, GAUSSIAN = ("real training split", "random subset", "herding", "k-means",
                                                    "k-center", "Gaussian")
SELECTIONS = (RANDOM, HERDING, KMEANS, KCENTER)
COLOURS = {REAL: "black", RANDOM: "tab:grey", HERDING: "tab:brown", KMEANS: "tab:purple", KCENTER: "tab:pink",
           GAUSSIAN: "tab:green", BASELINE: "tab:blue", SML: "tab:orange", DIV_SML: "tab:red", DIV_SML_LIN: "tab:cyan",
           DIV_SML_MSP: "tab:olive", BASELINE_LIN: "navy", DIV_SML_LONG: "darkred"}
RESULTS_MD = HERE / "RESULTS.md"
START, END = "<!-- distill_quality:start -->", "<!-- distill_quality:end -->"


def main(argv=None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    draws = parse_draws(args.draws)
    features = {draw: prepare(args.work, draw) for draw in draws}
    extra = [f"train.steps={args.steps}", f"train.eval_every={max(1, args.steps // 2)}"] if args.steps else []
    variants = {name: VARIANTS[name] for name in args.variants}
    protocols = [args.protocol] + [p for p in args.protocols if p != args.protocol]
    seeds = list(range(args.seeds))
    jobs = Jobs(args, features, extra)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        jobs.pool = pool
        measured = [(draw, args.protocol, variants, args.budgets, args.decoders) for draw in draws]
        measured += [(draw, protocol, {DIV_SML: VARIANTS[DIV_SML]}, ["ppc100"], ["linear"])  # the recipe alone
                     for draw in draws for protocol in protocols[1:]]
        for draw, protocol, chosen, budgets, decoders in measured:  # the generators first: they take longest
            jobs.submit_generators(draw, protocol, chosen, seeds, budgets, decoders)
        for draw, protocol, *_ in measured:
            jobs.submit_real_scores(draw, protocol)
        trained = results(jobs.generators, "generators")
        jobs.submit_generator_scores(trained)
        cells = results(jobs.scores, "scores")
    report = build_report(args, draws, protocols, variants, seeds, trained, cells, jobs)
    report["cpu_minutes"] = round(cpu_seconds() / 60, 1)
    report["wall_minutes"] = round((time.perf_counter() - wall) / 60, 1)
    markdown = render(report)
    print(markdown)
    args.work.mkdir(parents=True, exist_ok=True)  # every run's numbers, kept beside its generators
    (args.work / "distill_quality.json").write_text(json.dumps(report, indent=1))
    if args.write:
        write(report, markdown, args.work / "distill_quality.json")
    return 0


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", default=DEFAULT_DRAWS, help=f"preset:corpus seed:fold, comma-separated "
                                                               f"(default {DEFAULT_DRAWS})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per draw (default 3)")
    parser.add_argument("--protocol", default=None, choices=list(PROTOCOLS),
                        help="data protocol of the main tables (default: the preset's)")
    parser.add_argument("--protocols", nargs="*", default=[], choices=list(PROTOCOLS),
                        help="other data protocols to train and score the recipe under (at ppc100, linear head)")
    parser.add_argument("--budgets", nargs="+", default=list(BUDGETS), choices=BUDGETS)
    parser.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=list(DECODERS),
                        help="decoders of the cross-decoder table (linear is always scored)")
    parser.add_argument("--variants", nargs="+", default=[BASELINE, DIV_SML], choices=list(VARIANTS))
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    parser.add_argument("--work", type=Path, default=Path("runs/distill_quality"), help="corpora, generators, pools")
    parser.add_argument("--steps", type=int, help="the generators' steps instead of the preset's (quick checks)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="write RESULTS.md's section, the figures and the JSON (default yes)")
    args = parser.parse_args(argv)
    args.protocol = args.protocol or preset_protocol()
    args.decoders = ["linear"] + [d for d in args.decoders if d != "linear"]
    if args.protocols and DIV_SML not in args.variants:
        parser.error(f"--protocols measures {DIV_SML!r}: --variants must include it")
    if args.write and not {BASELINE, DIV_SML} <= set(args.variants):
        parser.error(f"RESULTS.md's section checks the targets, which compare {DIV_SML!r} with the {BASELINE!r}: "
                     "--variants without them needs --no-write")
    return args


def preset_protocol() -> str:
    """The data protocol of the recipe's preset: the main tables' unless --protocol names another."""
    data = load_config(PRESET).data
    return next(name for name, p in PROTOCOLS.items() if p == data)


class Jobs:
    """The benchmark's work, submitted to a process pool: generators first, scores as their inputs exist."""

    def __init__(self, args: argparse.Namespace, features: dict[Draw, str], extra: list[str]):
        self.args, self.features, self.extra = args, features, extra
        self.pool: ProcessPoolExecutor | None = None
        self.generators: dict[tuple, object] = {}  # (draw, protocol, variant, seed) -> future
        self.scores: dict[tuple, object] = {}  # (draw, protocol, source, budget, decoder, seed) -> future
        self.plans: dict[tuple, dict] = {}  # (draw, protocol) -> budgets, decoders of its generators
        self.y_true: dict[tuple, list[int]] = {}
        self.sizes: dict[tuple, dict] = {}

    def submit_generators(self, draw: Draw, protocol: str, variants: dict, seeds: list[int], budgets: list[str],
                          decoders: list[str]) -> None:
        """The generators of a draw and protocol, and the plan (seeds, budgets, decoders) its scores follow."""
        features, work = self.features[draw], self.args.work
        self.plans[(draw, protocol)] = {"budgets": budgets, "decoders": decoders, "seeds": seeds}
        for name, variant in variants.items():
            for i in seeds:
                out = work / "generators" / draw.name / protocol / _slug(name) / f"seed{i}"
                self.generators[(draw, protocol, name, i)] = self.pool.submit(
                    train_generator, features, draw.fold, protocol, PRESET, variant.overrides + self.extra, i,
                    str(out), str(work / "pools"), variant.choose_by)

    def submit_real_scores(self, draw: Draw, protocol: str) -> None:
        """The scores of a draw and protocol's real-data sources (the real split, the selections, the Gaussian)."""
        s = splits(self.features[draw], draw.fold, protocol)
        self.y_true[(draw, protocol)] = s["test"].labels.tolist()
        self.sizes[(draw, protocol)] = {k: len(v) for k, v in s.items()}
        plan = self.plans[(draw, protocol)]
        seeds, budgets, decoders = plan["seeds"], plan["budgets"], plan["decoders"]
        # The selection ladder chooses in the embedding of the seed-0 real-data downstream (herding's, k-means').
        reference = score(s, s["train"], protocol_seed(0), keep_model=True)
        embeddings = embed_set(rebuild(reference, s), s["train"], device="cpu")
        sources = {RANDOM: {"kind": "random"},
                   HERDING: {"kind": "ordered", "orders": class_herding_orders(s["train"], embeddings)},
                   KMEANS: {"kind": "kmeans", "embeddings": embeddings},
                   KCENTER: {"kind": "ordered", "orders": class_orders(s["train"], embeddings, kcenter_order)},
                   GAUSSIAN: {"kind": "gaussian", "frames": load_config(PRESET).model.frames}}
        for i in seeds:
            for decoder in decoders:
                self._score(draw, protocol, REAL, {"kind": "real"}, "full", decoder, i)
            for name, source in sources.items():
                if protocol != self.args.protocol and name not in (RANDOM, GAUSSIAN):
                    continue
                for budget in budgets:
                    if budget == "full" and name in SELECTIONS:
                        continue  # a real subset of the real split's size, balanced, cannot be drawn
                    for decoder in decoders if budget in CROSS_BUDGETS else ["linear"]:
                        self._score(draw, protocol, name, source, budget, decoder, i)

    def submit_generator_scores(self, trained: dict) -> None:
        """The scores of every trained generator at its draw's budgets and decoders."""
        for (draw, protocol, name, i), result in trained.items():
            plan = self.plans[(draw, protocol)]
            for budget in plan["budgets"]:
                for decoder in plan["decoders"] if budget in CROSS_BUDGETS else ["linear"]:
                    self._score(draw, protocol, name, {"kind": "generator", "path": result["path"]}, budget, decoder,
                                i)

    def _score(self, draw, protocol, name, source, budget, decoder, i) -> None:
        self.scores[(draw, protocol, name, budget, decoder, i)] = self.pool.submit(
            score_source, self.features[draw], draw.fold, protocol, source, i, budget, decoder)


def score_source(features: str, fold: int, protocol: str, source: dict, seed_index: int, budget: str,
                 decoder: str) -> dict:
    """One cell for one seed: draw the training set of `source` at `budget`, score it with `decoder`."""
    s = splits(features, fold, protocol)
    train, seed, kind = s["train"], protocol_seed(seed_index), source["kind"]
    counts = budget_counts(train, budget)
    wanted = np.array(list(counts.values()))
    if kind in ("random", "ordered", "kmeans") and (wanted > train.class_counts()).any():
        return {"skipped": "a real subset cannot exceed the real class sizes"}
    if kind == "real":
        train_set = train
    elif kind == "random":
        train_set = train.subset(random_subset(train, wanted, seed))
    elif kind == "ordered":
        train_set = train.subset(np.concatenate([np.asarray(o)[:n] for o, n in zip(source["orders"], wanted)]))
    elif kind == "kmeans":
        train_set = kmeans_draw(train, source["embeddings"])(wanted, seed)
    elif kind == "gaussian":
        train_set = gaussian_baseline(train, source["frames"]).sample_features(counts, seed=seed)
    else:  # a trained generator: the one of this seed
        train_set = load(source["path"]).sample_features(counts, seed=seed)
    cell = score(s, train_set, seed, decoder)
    return cell


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower()


# --- the report ---------------------------------------------------------------------------------------------------


def build_report(args, draws, protocols, variants, seeds, trained, cells, jobs: Jobs) -> dict:
    """Every number of the section: per draw and source, the seeds' cells; generators' costs and curves; and the
    summaries over draws x seeds."""
    main, names = args.protocol, [draw.name for draw in draws]
    table = {}  # protocol -> source -> budget -> decoder -> draw -> [cell per seed]
    for (draw, protocol, source, budget, decoder, i), cell in cells.items():
        if "skipped" in cell:
            continue
        per_draw = table.setdefault(protocol, {}).setdefault(source, {}).setdefault(budget, {}).setdefault(
            decoder, {}).setdefault(draw.name, {})
        per_draw[i] = cell
    generators = {}
    for (draw, protocol, name, i), result in trained.items():
        generators.setdefault(protocol, {}).setdefault(name, {}).setdefault(draw.name, {})[i] = result
    report = {"draws": names, "protocol": main, "protocols": protocols, "seeds": seeds, "preset": PRESET,
              "variants": list(variants), "budgets": args.budgets, "decoders": args.decoders,
              "sizes": {draw.name: jobs.sizes[(draw, main)] for draw in draws},
              "steps": args.steps, "summary": {}, "per_draw": {}, "generators": {}, "mcnemar": {}}
    for protocol in protocols:
        rows = table.get(protocol, {})
        y_true = {draw.name: jobs.y_true[(draw, protocol)] for draw in draws}
        report["summary"][protocol], report["per_draw"][protocol] = summarise(rows, names, seeds)
        report["mcnemar"][protocol] = {}
        for name in variants:
            base = baseline_of(name)
            if name == base or name not in rows:
                continue
            if base not in rows:  # said in the report: a comparison left out is not a comparison that held
                report["mcnemar"][protocol][name] = {"versus": base, "p": {}}
                continue
            report["mcnemar"][protocol][name] = {"versus": base, "p": {
                budget: {decoder: {d: median_p(y_true[d], _preds(rows, name, budget, decoder, d, seeds),
                                               _preds(rows, base, budget, decoder, d, seeds)) for d in names}
                         for decoder in decoders if decoder in rows[base][budget]}
                for budget, decoders in rows[name].items() if budget in rows[base]}}
        report["generators"][protocol] = {
            name: {d: [_cost(per_seed[i]) for i in seeds] for d, per_seed in per_draw.items()}
            for name, per_draw in generators.get(protocol, {}).items()}
    return report


def baseline_of(name: str) -> str | None:
    """The Baseline a variant is compared with: the one whose checkpoints the same decoder chooses (None: the script
    has no such Baseline)."""
    baselines = (BASELINE, BASELINE_LIN)
    return next((b for b in baselines if VARIANTS[b].choose_by == VARIANTS[name].choose_by), None)


def _preds(rows, source, budget, decoder, draw, seeds) -> list[list[int]]:
    return [rows[source][budget][decoder][draw][i]["pred"] for i in seeds]


def _cost(result: dict) -> dict:
    kept = ("selected_step", "seconds", "seconds_to_selected", "chosen_dev", "chosen_test", "steps", "parameters",
            "curve")
    return {**{key: result[key] for key in kept}, "decoder": result.get("decoder", "linear")}  # absent: before it


def summarise(rows: dict, draws: list[str], seeds: list[int]) -> tuple[dict, dict]:
    """(over draws x seeds, per draw) of every source, budget and decoder: test UAR, accuracy and dev UAR summaries,
    the ratio to that decoder's real-full score, the paired improvement over the random subset."""
    overall, per_draw = {}, {}
    for source, budgets in rows.items():
        for budget, decoders in budgets.items():
            for decoder, by_draw in decoders.items():
                real = rows[REAL]["full"][decoder]
                random = rows.get(RANDOM, {}).get(budget, {}).get(decoder)
                groups = {"all": [(d, i) for d in draws for i in seeds]} | {d: [(d, i) for i in seeds] for d in draws}
                for group, members in groups.items():
                    if not all(d in by_draw and i in by_draw[d] for d, i in members):
                        continue
                    values = [by_draw[d][i]["uar"] for d, i in members]
                    real_mean = float(np.mean([real[d][i]["uar"] for d, i in members]))
                    cell = {"uar": summary(values), "acc": summary([by_draw[d][i]["acc"] for d, i in members]),
                            "dev": float(np.mean([by_draw[d][i]["dev"] for d, i in members])),
                            "ratio": float(np.mean(values)) / real_mean}
                    if random is not None and source != RANDOM and all(d in random and i in random[d]
                                                                       for d, i in members):
                        cell["vs_random"] = paired_difference(values, [random[d][i]["uar"] for d, i in members])
                    target = overall if group == "all" else per_draw.setdefault(group, {})
                    target.setdefault(source, {}).setdefault(budget, {})[decoder] = cell
    return overall, per_draw


def _cell(cell: dict | None, with_random: bool = True) -> str:
    if cell is None:
        return "—"
    versus = f", {points(cell['vs_random'])}" if with_random and "vs_random" in cell else ""
    return f"{pct(cell['uar'])} ({cell['ratio']:.2f}x{versus})"


def _table(summary: dict, budgets: list[str], decoder: str = "linear", with_random: bool = True) -> list[str]:
    lines = ["| source | " + " | ".join(budgets) + " |", "| --- |" + " --- |" * len(budgets)]
    for name in summary:
        cells = [_cell(summary[name].get(b, {}).get(decoder), with_random) for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _order(summary: dict) -> dict:
    """Sources in reading order: the reference, the selection ladder, the Gaussian, the generators."""
    order = [REAL, *SELECTIONS, GAUSSIAN, *VARIANTS]
    return {name: summary[name] for name in order if name in summary}


def render(report: dict) -> str:
    """The RESULTS.md section: the multi-draw tables, each draw's, the cross-decoder table, McNemar, generators,
    the protocol comparison and the targets."""
    main, n = report["protocol"], len(report["seeds"])
    overall, per_draw = _order(report["summary"][main]), report["per_draw"][main]
    draws = report["draws"]
    sizes = "; ".join(f"{d} {s['train']}/{s['dev']}/{s['test']}" for d, s in report["sizes"].items())
    flags = f" --protocol {main}" if main != preset_protocol() else ""
    flags += f" --steps {report['steps']}" if report["steps"] else ""
    for flag, default in (("budgets", BUDGETS), ("decoders", DECODERS), ("variants", (BASELINE, DIV_SML))):
        if list(report[flag]) != list(default):
            flags += f" --{flag} " + " ".join(f'"{v}"' if " " in v else v for v in report[flag])
    lines = [f"Command: `python benchmarks/distill_quality.py --draws {','.join(_draw_arg(d) for d in draws)} "
             f"--seeds {n}{' --protocols ' + ' '.join(report['protocols'][1:]) if len(report['protocols']) > 1 else ''}"
             f"{flags}` — "
             f"{len(draws)} draws of the embedded corpus (preset-corpus seed-fold; train/dev/test utterances: "
             f"{sizes}), "
             f"fbank, data protocol `{main}`, GAN-ATT with the `{report['preset']}` preset; "
             f"{report['wall_minutes']:.0f} min wall, {report['cpu_minutes']:.0f} CPU-min on 2 cores.", "",
             f"Test UAR (%) on the real test split, mean ± 95 % CI over the {len(draws)} draws x {n} seeds, (ratio to "
             "the real training split, improvement over the random subset in UAR points ± 95 % CI of the paired "
             "differences); linear head; chance 25.0. `full`: as many utterances as the real training split, balanced "
             "(a real subset cannot be: —).", ""]
    lines += _table(overall, report["budgets"])
    for draw in draws:
        lines += ["", f"Draw `{draw}` ({n} seeds):", ""] + _table(_order(per_draw.get(draw, {})), report["budgets"])
    lines += ["", "Accuracy (%, SUPERB's metric), linear head, mean ± 95 % CI over draws x seeds:", "",
              "| source | " + " | ".join(report["budgets"]) + " |", "| --- |" + " --- |" * len(report["budgets"])]
    for name, row in overall.items():
        lines.append(f"| {name} | " + " | ".join(pct(row.get(b, {}).get("linear", {}).get("acc"))
                                                 for b in report["budgets"]) + " |")
    lines += _cross_decoder(report, overall)
    lines += _mcnemar(report)
    lines += _generators(report)
    if len(report["protocols"]) > 1:
        lines += _protocols(report)
    if BASELINE in report["variants"] and DIV_SML in report["variants"] and "ppc100" in report["budgets"]:
        lines += ["", "Targets (measured above):", "", *targets(report)]
    else:
        lines += ["", f"Targets: not checked (they compare {DIV_SML} with the {BASELINE} at ppc100, and this run "
                  f"trained {', '.join(report['variants'])} at {', '.join(report['budgets'])})."]
    return "\n".join(lines) + "\n"


def _draw_arg(name: str) -> str:
    preset, seed, fold = name.split("-")
    return f"{preset}:{seed[1:]}:{fold[1:]}"


def _cross_decoder(report: dict, overall: dict) -> list[str]:
    decoders = report["decoders"]
    budgets = [b for b in CROSS_BUDGETS if b in report["budgets"]]
    header = [f"{d} {b}" for d in decoders for b in budgets]
    lines = ["", "Cross-decoder table: test UAR (%), mean ± 95 % CI over draws x seeds (ratio to that decoder's own "
             "real-full score); the real split's row is each decoder's reference:", "",
             "| source | " + " | ".join(header) + " |", "| --- |" + " --- |" * len(header)]
    for name, row in overall.items():
        if name == REAL:  # the references: the whole split under each decoder
            cells = [_cell(row["full"].get(d), with_random=False) if b == "full" else "—"
                     for d in decoders for b in budgets]
        else:
            cells = [_cell(row.get(b, {}).get(d), with_random=False) for d in decoders for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    per_draw, draws = report["per_draw"][report["protocol"]], report["draws"]
    lines += ["", "Each draw's own test UAR (%) at ppc100 (real split: full) on the decoders other than linear, mean ± "
              "95 % CI over its seeds (ratio to that draw's real-full under the decoder):", "",
              "| source | decoder | " + " | ".join(draws) + " |", "| --- | --- |" + " --- |" * len(draws)]
    for name in overall:
        budget = "full" if name == REAL else "ppc100"
        for decoder in decoders[1:]:
            cells = [_cell(per_draw.get(d, {}).get(name, {}).get(budget, {}).get(decoder), with_random=False)
                     for d in draws]
            lines.append(f"| {name} | {decoder} | " + " | ".join(cells) + " |")
    return lines


def _mcnemar(report: dict) -> list[str]:
    main = report["protocol"]
    if not report["mcnemar"][main]:
        return []
    lines = ["", "McNemar p against the Baseline whose checkpoints the same decoder chose, median over the seed "
             "pairs (seed i against seed i), per draw and decoder:", "",
             "| generator | against | budget | decoder | " + " | ".join(report["draws"]) + " |",
             "| --- | --- | --- | --- |" + " --- |" * len(report["draws"])]
    for name, comparison in report["mcnemar"][main].items():
        if not comparison["p"]:
            lines.append(f"| {name} | {comparison['versus'] or 'no Baseline chosen the same way'} | — | — | "
                         + " | ".join("not trained" for _ in report["draws"]) + " |")
        for budget, decoders in comparison["p"].items():
            for decoder, per_draw in decoders.items():
                lines.append(f"| {name} | {comparison['versus']} | {budget} | {decoder} | "
                             + " | ".join(f"{per_draw[d]:.2g}" for d in report["draws"]) + " |")
    return lines


def gaps(report: dict, protocol: str, name: str) -> dict[str, float]:
    """Draw -> mean over seeds of (dev - test) UAR points of the chosen checkpoints; 'all': over draws x seeds."""
    costs = report["generators"][protocol][name]
    per_draw = {d: float(np.mean([100 * (c["chosen_dev"] - c["chosen_test"]) for c in seeds]))
                for d, seeds in costs.items()}
    return {**per_draw, "all": float(np.mean(list(per_draw.values())))}


def mean_curve(costs: list[dict], split: str) -> tuple[list[int], np.ndarray]:
    """Steps and the mean over seeds of a split's UAR along the learning curves."""
    return [p["step"] for p in costs[0]["curve"]], np.mean([[p[split] for p in c["curve"]] for c in costs], axis=0)


def _generators(report: dict) -> list[str]:
    main = report["protocol"]
    lines = ["", "Generators, per draw: the dev-chosen step per seed, minutes to reach it (one core each, evaluations "
             "included), dev − test UAR points of the chosen checkpoints, and the test UAR at ppc100 along the "
             "generator steps (mean over seeds; dev chooses, test is only recorded), both scored by the decoder that "
             "chooses:", "",
             "| generator | draw | decoder | chosen steps | min to chosen | dev − test | test UAR by step |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, per_draw in report["generators"][main].items():
        gap = gaps(report, main, name)
        for draw, costs in per_draw.items():
            steps, curve = mean_curve(costs, "test")
            lines.append(f"| {name} | {draw} | {costs[0]['decoder']} | {[c['selected_step'] for c in costs]} | "
                         f"{max(c['seconds_to_selected'] for c in costs) / 60:.1f} | {gap[draw]:+.1f} | "
                         + ", ".join(f"{s}: {100 * v:.1f}" for s, v in zip(steps, curve)) + " |")
    return lines


def _protocols(report: dict) -> list[str]:
    names = [REAL, RANDOM, GAUSSIAN, DIV_SML]
    lines = ["", "Data protocols: test UAR (%) at ppc100 (real split: full), mean ± 95 % CI over draws x seeds (each "
             "draw's over its seeds below it), and the dev − test points of the recipe's chosen checkpoints:", "",
             "| protocol | draw | " + " | ".join(names) + " | dev − test |", "| --- |" + " --- |" * (len(names) + 2)]
    for protocol in report["protocols"]:
        gap = gaps(report, protocol, DIV_SML)
        per_draw = report["per_draw"][protocol]
        groups = [("all", report["summary"][protocol])] + [(d, per_draw[d]) for d in report["draws"]]
        for draw, rows in groups:
            cells = [pct(rows.get(name, {}).get("full" if name == REAL else "ppc100", {}).get("linear", {}).get("uar"))
                     for name in names]
            lines.append(f"| {protocol} | {draw} | " + " | ".join(cells) + f" | {gap[draw]:+.1f} |")
    return lines


def targets(report: dict) -> list[str]:
    """The targets of the issue, each stated with the numbers that meet or miss it (mean and every draw's)."""
    main = report["protocol"]
    overall, per_draw, draws = report["summary"][main], report["per_draw"][main], report["draws"]

    def uar(rows, name, budget="ppc100", decoder="linear"):
        return rows[name][budget][decoder]["uar"]["mean"]

    def real(rows, decoder="linear"):
        return rows[REAL]["full"][decoder]["uar"]["mean"]

    checks = []
    groups = [("mean", overall)] + [(d, per_draw[d]) for d in draws]
    ratio = {g: uar(rows, DIV_SML) / real(rows) for g, rows in groups}
    checks.append((all(r >= 0.97 for r in ratio.values()), "+L_DIV+L_SML at ppc100 ≥ 0.97x real-full (mean; each "
                   "draw): " + ", ".join(f"{g} {r:.3f}x" for g, r in ratio.items())))
    versus = {g: 100 * (uar(rows, DIV_SML) - uar(rows, GAUSSIAN)) for g, rows in groups}
    checks.append((all(v >= 0 for v in versus.values()), "... ≥ the Gaussian (points; mean, each draw): "
                   + ", ".join(f"{g} {v:+.1f}" for g, v in versus.items())))
    for decoder in report["decoders"][1:]:
        r = uar(overall, DIV_SML, decoder=decoder) / real(overall, decoder)
        checks.append((r >= 0.95, f"... on the {decoder} decoder ≥ 0.95x its real-full (mean): {r:.3f}x"))
    for decoder in report["decoders"]:  # the Baseline is chosen as the recipe is: compared on every head scored
        p = report["mcnemar"][main][DIV_SML]["p"]["ppc100"][decoder]
        better = {d: uar(per_draw[d], DIV_SML, decoder=decoder) > uar(per_draw[d], BASELINE, decoder=decoder)
                  for d in draws}
        checks.append((all(p[d] < 0.05 and better[d] for d in draws),
                       f"... above the Baseline on the {decoder} decoder, McNemar p < 0.05 (median over seed pairs) on "
                       "every draw: " + ", ".join(
                           f"{d} {100 * uar(per_draw[d], DIV_SML, decoder=decoder):.1f} vs "
                           f"{100 * uar(per_draw[d], BASELINE, decoder=decoder):.1f} (p {p[d]:.2g})" for d in draws)))
    gap = gaps(report, main, DIV_SML)
    checks.append((gap["all"] <= 3, f"dev − test of the chosen checkpoints ≤ 3 points (mean): {gap['all']:+.1f} "
                   "(" + ", ".join(f"{d} {gap[d]:+.1f}" for d in draws) + ")"))
    last = {}
    for draw, costs in report["generators"][main][DIV_SML].items():
        _, curve = mean_curve(costs, "test")
        last[draw] = 100 * (curve.max() - curve[-1])
    mean_last = float(np.mean(list(last.values())))
    checks.append((mean_last <= 2, f"test UAR at the last step within 2 points of its best (mean over draws of the "
                   f"seed-mean curve): {mean_last:.1f} (" + ", ".join(f"{d} {v:.1f}" for d, v in last.items()) + ")"))
    minutes = max(c["seconds_to_selected"] for costs in report["generators"][main][DIV_SML].values()
                  for c in costs) / 60
    checks.append((minutes <= 10, f"one generator to its chosen step ≤ 10 min on one core: at most {minutes:.1f} min"))
    return [f"- {'met' if ok else '**missed**'}: {text}" for ok, text in checks]


# --- figures and files --------------------------------------------------------------------------------------------


def _save(fig, stem: Path) -> None:
    fig.savefig(stem.with_suffix(".png"), dpi=150)
    fig.savefig(stem.with_suffix(".svg"))


def uar_vs_ppc_figure(report: dict, stem: Path) -> None:
    """Test UAR vs budget per source over draws x seeds (95 % CIs as bars); the real split and chance as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main, budgets = report["protocol"], report["budgets"]
    overall = _order(report["summary"][main])
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    shown = [n for n in overall if n != REAL]
    for k, name in enumerate(shown):
        row = overall[name]
        keys = [b for b in budgets if "linear" in row.get(b, {})]
        x = np.array([budgets.index(b) for b in keys]) + (k - len(shown) / 2) * 0.05
        mean = np.array([row[b]["linear"]["uar"]["mean"] for b in keys])
        err = np.array([mean - [row[b]["linear"]["uar"]["low"] for b in keys],
                        [row[b]["linear"]["uar"]["high"] for b in keys] - mean])
        ax.errorbar(x, 100 * mean, yerr=100 * err, marker="o", capsize=3, color=COLOURS[name], label=name)
    real = overall[REAL]["full"]["linear"]["uar"]
    ax.axhline(100 * real["mean"], color="black", linestyle="--", label=f"{REAL} ({100 * real['mean']:.1f})")
    ax.axhspan(100 * real["low"], 100 * real["high"], color="black", alpha=0.08)
    ax.axhline(25.0, color="grey", linestyle=":", label="chance (25.0)")
    ax.set_xticks(range(len(budgets)), [b if b == "full" else b[3:] for b in budgets])
    ax.set_xlabel("samples per class (full: the real training split's size, balanced)")
    ax.set_ylabel("UAR on the real test split (%)")
    ax.set_title(f"Training on one source only: {len(report['draws'])} corpus draws x {len(report['seeds'])} seeds, "
                 f"protocol {main} (mean ± 95 % CI)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    _save(fig, stem)
    plt.close(fig)


def learning_curve_figure(report: dict, stem: Path) -> None:
    """Test (solid) and dev (dashed) UAR at ppc100 vs generator step, mean over seeds, a panel per draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main, draws = report["protocol"], report["draws"]
    fig, axes = plt.subplots(1, len(draws), figsize=(4.2 * len(draws), 3.8), layout="constrained", squeeze=False,
                             sharey=True)
    for ax, draw in zip(axes[0], draws):
        for name, per_draw in report["generators"][main].items():
            for split, style in (("test", "-"), ("dev", "--")):
                steps, values = mean_curve(per_draw[draw], split)
                ax.plot(steps, 100 * values, style, marker="o", markersize=3, color=COLOURS[name],
                        label=f"{name}, {split}")
        choosers = sorted({VARIANTS[name].choose_by for name in report["generators"][main]})
        for decoder, style in zip(choosers, ("--", "-.")):  # the reference of the head the curves are scored by
            real = report["per_draw"][main][draw][REAL]["full"].get(decoder)
            if real:
                ax.axhline(100 * real["uar"]["mean"], color="black", linestyle=style, linewidth=0.8,
                           label=f"{REAL} (test, {decoder} head)")
        ax.axhline(25.0, color="grey", linestyle=":", label="chance")
        ax.set_title(draw, fontsize=9)
        ax.set_xlabel("generator step")
    axes[0][0].set_ylabel("UAR at 100 per class, by the choosing decoder (%)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(f"GAN-ATT learning curves, mean of {len(report['seeds'])} seeds (dev chooses the checkpoint; test "
                 "is only recorded)", fontsize=10)
    _save(fig, stem)
    plt.close(fig)


def write(report: dict, markdown: str, report_json: Path) -> None:
    """The results JSON (a copy of `report_json`), the figures, and the RESULTS.md section (replaced between its
    markers)."""
    (HERE / "results").mkdir(exist_ok=True)
    shutil.copyfile(report_json, HERE / "results" / "distill_quality.json")
    figures = HERE / "figures"
    figures.mkdir(exist_ok=True)
    uar_vs_ppc_figure(report, figures / "uar_vs_ppc")
    learning_curve_figure(report, figures / "learning_curves")
    section = (f"{START}\n{markdown}\n![UAR vs ppc](figures/uar_vs_ppc.png)\n\n"
               f"![learning curves](figures/learning_curves.png)\n{END}")
    text = RESULTS_MD.read_text()
    if START in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text += f"\n## Distillation quality (`benchmarks/distill_quality.py`)\n\n{section}\n"
    RESULTS_MD.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
