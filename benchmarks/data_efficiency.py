"""Distilled sets at 1-100 samples per class against the field's selection baselines, on several corpus draws.

    python benchmarks/data_efficiency.py [--draws small:1:1,small:2:2,default:0:3] [--seeds 3]
        [--budgets 1 2 5 10 20 50 100] [--methods herding cover moments dm] [--decoders ...] [--regimes soft noise]
        [--workers 2] [--work DIR] [--steps N] [--no-write]

For every draw and seed, the recipe's generator (+L_DIV+L_SML, the `small` preset; the same generators
`distill_quality.py` trains in the same --work folder, trained here when missing) and the class-conditional
Gaussian give, at each budget, an i.i.d. sample and a distilled set of each method (candidate selection by
herding, cover or moment matching in the embedding of the real-data downstream, or latent distribution
matching); the real training split gives the selection ladder (random, herding, k-means, k-center). Each set trains
the downstream alone (checkpoint chosen on real dev, UAR on real test). `distilled` is, per draw and seed, the
generator's set whose method scored best on DEV (never test) with the linear head; `Gaussian distilled` the same for
the Gaussian. The linear head is scored at every budget; at 10 per class the other decoders train on the ladder, the
i.i.d. samples and the distilled set. With --regimes, the ladder's random and k-means subsets and the generator's
sets are also trained with the L_SML pool's soft labels (`soft`) or Gaussian feature noise (`noise`), in rows of
their own.

It writes benchmarks/results/data_efficiency.json, benchmarks/figures/data_efficiency.png (and .svg), and the
section between the `data_efficiency` markers of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from draws import (DECODER_FRAMES, DOWNSTREAM, PROTOCOLS, cpu_seconds, median_p, paired_difference, parse_draws, pct,  # noqa: E402
                   points, prepare, protocol_seed, rebuild, results, score, splits, summary, train_generator)

from emodistill.distill import load_config, train_pool  # noqa: E402
from emodistill.distilled import SetSpec, distilled_set  # noqa: E402
from emodistill.distilled.matching import MatchConfig  # noqa: E402
from emodistill.downstream import (DECODERS, accuracy, embed_set, predict, teacher_probabilities,  # noqa: E402
                                   train_downstream, uar)
from emodistill.evaluate.baselines import (class_herding_orders, class_orders, gaussian_baseline,  # noqa: E402
                                           kcenter_order, kmeans_draw, random_subset)
from emodistill.features.store import dataset_fingerprint  # noqa: E402
from emodistill.generator import load  # noqa: E402

DEFAULT_DRAWS = "small:1:1,small:2:2,default:0:3"
PRESET = "small"
RECIPE = ["loss.lambda_div=1", "loss.lambda_sml=1"]  # +L_DIV+L_SML, as distill_quality.py names it
RECIPE_DIR = "l_div_l_sml"  # its folder there
BUDGETS = (1, 2, 5, 10, 20, 50, 100)
CROSS_BUDGETS = (10,)  # where every decoder is scored (the ladder, the i.i.d. samples and the distilled set)
METHODS = ("herding", "cover", "moments", "dm")
CANDIDATES = 20
MATCH = MatchConfig(steps=100)  # latent distribution matching, shortened for the benchmark's CPU budget
SELECTIONS = ("random", "herding", "k-means", "k-center")
RESULTS_MD = HERE / "RESULTS.md"
START, END = "<!-- data_efficiency:start -->", "<!-- data_efficiency:end -->"


def main(argv=None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    draws = parse_draws(args.draws)
    features = {draw: prepare(args.work, draw) for draw in draws}
    seeds = list(range(args.seeds))
    extra = [f"train.steps={args.steps}", f"train.eval_every={max(1, args.steps // 2)}"] if args.steps else []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        generators = {}
        for draw in draws:
            for i in seeds:
                out = args.work / "generators" / draw.name / args.protocol / RECIPE_DIR / f"seed{i}"
                generators[(draw, i)] = pool.submit(existing_or_trained, features[draw], draw.fold, args.protocol,
                                                    RECIPE + extra, i, str(out), str(args.work / "pools"))
        paths = results(generators, "generators")
        jobs = {}
        for draw in draws:
            for i in seeds:
                for budget in args.budgets:
                    for regime in ["hard", *args.regimes]:
                        decoders = args.decoders if budget in CROSS_BUDGETS and regime == "hard" else ["linear"]
                        jobs[(draw.name, i, budget, regime)] = pool.submit(
                            score_budget, features[draw], draw.fold, args.protocol, paths[(draw, i)], i, budget,
                            decoders, regime, args.methods, str(args.work / "pools"))
        real = {(draw.name, i): pool.submit(score_real, features[draw], draw.fold, args.protocol, i)
                for draw in draws for i in seeds}
        cells = results(jobs, "budgets")
        real = results(real, "real data")
    report = build_report(args, [draw.name for draw in draws], seeds, cells, real,
                          {draw.name: splits(features[draw], draw.fold, args.protocol) for draw in draws})
    report["cpu_minutes"] = round(cpu_seconds() / 60, 1)
    report["wall_minutes"] = round((time.perf_counter() - wall) / 60, 1)
    markdown = render(report)
    print(markdown)
    if args.write:
        write(report, markdown)
    return 0


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", default=DEFAULT_DRAWS, help=f"preset:corpus seed:fold, comma-separated "
                                                               f"(default {DEFAULT_DRAWS})")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--protocol", choices=list(PROTOCOLS), help="data protocol (default: the preset's)")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=list(DECODERS),
                        help="decoders scored at 1 and 10 per class (linear is always scored, at every budget)")
    parser.add_argument("--regimes", nargs="*", default=[], choices=["soft", "noise"],
                        help="also train with the pool's soft labels / Gaussian feature noise, in rows of their own")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/distill_quality"),
                        help="corpora, generators, pools (shared with distill_quality.py)")
    parser.add_argument("--steps", type=int, help="generators' steps instead of the preset's (quick checks)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    data = load_config(PRESET).data
    args.protocol = args.protocol or next(name for name, p in PROTOCOLS.items() if p == data)
    args.decoders = ["linear"] + [d for d in args.decoders if d != "linear"]
    return args


def existing_or_trained(features: str, fold: int, protocol: str, overrides: list[str], seed: int, out: str,
                        pools: str) -> str:
    """The generator's folder: the one distill_quality.py trained there, else trained now."""
    path = Path(out) / "generator"
    if not (path / "config.json").is_file():
        path = Path(train_generator(features, fold, protocol, PRESET, overrides, seed, out, pools)["path"])
    return str(path)


_pools: dict[tuple, list] = {}
_embeddings: dict[tuple, tuple] = {}


def _embedding(features: str, fold: int, protocol: str) -> tuple:
    """(model, the training split embedded by it): the seed-0 real-data downstream every selection works in, trained
    once per process."""
    key = (features, fold, protocol)
    if key not in _embeddings:
        s = splits(features, fold, protocol)
        model = rebuild(score(s, s["train"], protocol_seed(0), keep_model=True), s)
        _embeddings[key] = model, embed_set(model, s["train"], device="cpu")
    return _embeddings[key]


def _teacher(features: str, fold: int, protocol: str, pools: str) -> list:
    """The L_SML pool of the draw (the soft labels' teacher), from its cache."""
    key = (features, fold, protocol)
    if key not in _pools:
        s, data = splits(features, fold, protocol), PROTOCOLS[protocol]
        _pools[key] = train_pool(s["train"], s["dev"], load_config(PRESET).pool, pools,
                                 fingerprint=dataset_fingerprint(features, fold, data), progress=False)
    return _pools[key]


def score_budget(features: str, fold: int, protocol: str, generator_path: str, seed_index: int, budget: int,
                 decoders: list[str], regime: str, methods: list[str], pools: str) -> dict:
    """Every source of one draw, seed, budget and regime: decoder -> name -> cell. Every set trains the linear head;
    the generator's set whose method scored best on dev there is `distilled`, and the other decoders train on it,
    the selection ladder and the i.i.d. samples."""
    s = splits(features, fold, protocol)
    train, seed = s["train"], protocol_seed(seed_index)
    embedding, embedded = _embedding(features, fold, protocol)
    counts = np.full(len(train.label_names), budget)
    sets = {}
    if (counts <= train.class_counts()).all():
        sets["random"] = train.subset(random_subset(train, counts, seed))
        sets["herding"] = train.subset(_first(class_herding_orders(train, embedded), counts))
        sets["k-means"] = kmeans_draw(train, embedded)(counts, seed)
        sets["k-center"] = train.subset(_first(class_orders(train, embedded, kcenter_order), counts))
    wanted = {name: budget for name in train.label_names}
    for name, generator in (("Gaussian", gaussian_baseline(train, load_config(PRESET).model.frames)),
                            ("GAN", load(generator_path))):
        sets[f"{name} iid"] = generator.sample_features(wanted, seed=seed)
        for method in methods:
            spec = SetSpec(method=method, candidates=CANDIDATES, seed=seed, match=MATCH)
            sets[f"{name} {method}"] = distilled_set(generator, train, wanted, spec, embedding)
    if regime != "hard":
        sets = {name: fs for name, fs in sets.items() if name in ("random", "k-means") or name.startswith("GAN")}
    teacher = _teacher(features, fold, protocol, pools) if regime == "soft" else None
    cells = {"linear": {name: _score_set(s, fs, seed, "linear", regime, teacher) for name, fs in sets.items()}}
    if regime == "hard":  # the same choice for the Gaussian: what the GAN adds over it under equal selection
        cells["linear"]["Gaussian distilled"] = dev_chosen(cells["linear"], methods, "Gaussian")
    chosen = dev_chosen(cells["linear"], methods)
    cells["linear"]["distilled"] = chosen
    sets["distilled"] = sets[f"GAN {chosen['method']}"]
    shared = [name for name in (*SELECTIONS, "Gaussian iid", "GAN iid", "distilled") if name in sets]
    for decoder in decoders[1:]:
        cells[decoder] = {name: _score_set(s, sets[name], seed, decoder, regime, teacher) for name in shared}
    return cells


def _score_set(s: dict, fs, seed: int, decoder: str, regime: str, teacher) -> dict:
    """One set's cell: the decoder trained on it alone (in the regime), checkpoint on real dev, scored on test."""
    config = DOWNSTREAM.model_copy(update={"seed": seed, "decoder": decoder,
                                           "max_frames": None if decoder == "linear" else DECODER_FRAMES,
                                           "augment_noise": 0.1 if regime == "noise" else 0.0})
    targets = None if teacher is None else teacher_probabilities(teacher, fs, device="cpu")
    trained = train_downstream(fs, s["dev"], config, progress=False, targets=targets)
    pred = predict(trained.model, s["test"], device="cpu")
    return {"uar": float(uar(s["test"].labels, pred)), "acc": float(accuracy(s["test"].labels, pred)),
            "dev": float(trained.dev_uar), "pred": pred.tolist(), "seconds": trained.train_seconds,
            "bytes": int(fs.nbytes)}


def score_real(features: str, fold: int, protocol: str, seed_index: int) -> dict:
    """The whole real training split's cell for one seed (its frames' bytes beside it)."""
    s = splits(features, fold, protocol)
    return {**score(s, s["train"], protocol_seed(seed_index)), "bytes": int(s["train"].nbytes)}


def _first(orders: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    return np.concatenate([order[:int(n)] for order, n in zip(orders, counts)])


# --- the report ---------------------------------------------------------------------------------------------------


def dev_chosen(per_source: dict[str, dict], methods: list[str], generator: str = "GAN") -> dict:
    """The generator's set whose method scored best on dev (ties: the earlier method): a choice that never reads
    test."""
    candidates = [f"{generator} {m}" for m in ["iid", *methods] if f"{generator} {m}" in per_source]
    best = max(candidates, key=lambda name: per_source[name]["dev"])
    return {**per_source[best], "method": best.removeprefix(f"{generator} ")}


def build_report(args, draws: list[str], seeds: list[int], cells: dict, real: dict, data: dict) -> dict:
    """Summaries over draws x seeds and per draw of every source, budget, decoder and regime; the dev-chosen
    distilled set; McNemar of it against the best selection baseline; storage and time at 10 per class."""
    table: dict = {}  # (budget, decoder, regime) -> source -> draw -> seed -> cell
    for (draw, i, budget, regime), per_decoder in cells.items():
        for decoder, per_source in per_decoder.items():
            for source, cell in per_source.items():
                table.setdefault((budget, decoder, regime), {}).setdefault(source, {}).setdefault(draw, {})[i] = cell
    summaries, per_draw, tests = {}, {}, {}
    for key, sources in table.items():
        budget, decoder, regime = key
        name = f"{budget}|{decoder}|{regime}"
        summaries[name], per_draw[name] = {}, {}
        random = sources.get("random")
        for source, by_draw in sources.items():
            values = [by_draw[d][i]["uar"] for d in draws for i in seeds]
            cell = {"uar": summary(values), "dev": float(np.mean([by_draw[d][i]["dev"] for d in draws
                                                                  for i in seeds]))}
            if random is not None and source != "random":
                cell["vs_random"] = paired_difference(values, [random[d][i]["uar"] for d in draws for i in seeds])
            summaries[name][source] = cell
            for d in draws:
                per_draw[name].setdefault(d, {})[source] = summary([by_draw[d][i]["uar"] for i in seeds])
        present = [s for s in SELECTIONS if s in sources]
        if present:
            best = max(present, key=lambda s: summaries[name][s]["uar"]["mean"])
            y = {d: data[d]["test"].labels.tolist() for d in draws}
            tests[name] = {"best_selection": best, "p": {d: median_p(
                y[d], [sources["distilled"][d][i]["pred"] for i in seeds],
                [sources[best][d][i]["pred"] for i in seeds]) for d in draws},
                "vs_best": paired_difference([sources["distilled"][d][i]["uar"] for d in draws for i in seeds],
                                             [sources[best][d][i]["uar"] for d in draws for i in seeds])}
    chosen = {name: {d: [table[_parse(name)]["distilled"][d][i]["method"] for i in seeds] for d in draws}
              for name in summaries if _parse(name)[1] == "linear"}
    return {"draws": draws, "seeds": seeds, "protocol": args.protocol, "budgets": args.budgets,
            "methods": args.methods, "decoders": args.decoders, "regimes": args.regimes, "steps": args.steps,
            "summary": summaries, "per_draw": per_draw, "tests": tests, "chosen": chosen,
            "real_full": float(np.mean([cell["uar"] for cell in real.values()])),
            "cost": _cost(table, draws, seeds, real)}


def _parse(name: str) -> tuple[int, str, str]:
    budget, decoder, regime = name.split("|")
    return int(budget), decoder, regime


def _cost(table: dict, draws: list[str], seeds: list[int], real: dict) -> dict | None:
    """Storage and downstream training time of the distilled set at 10 per class against the real training split's
    (its frames' bytes; its downstream's time to its checkpoint), as reductions in %."""
    key = (10, "linear", "hard")
    if key not in table:
        return None
    distilled = table[key]["distilled"]
    set_bytes = float(np.mean([distilled[d][i]["bytes"] for d in draws for i in seeds]))
    set_seconds = float(np.mean([distilled[d][i]["seconds"] for d in draws for i in seeds]))
    real_bytes = float(np.mean([cell["bytes"] for cell in real.values()]))
    real_seconds = float(np.mean([cell["seconds"] for cell in real.values()]))
    return {"set_bytes": set_bytes, "real_bytes": real_bytes, "bytes_reduction_pct": 100 * (1 - set_bytes / real_bytes),
            "set_seconds": set_seconds, "real_seconds": real_seconds,
            "seconds_reduction_pct": 100 * (1 - set_seconds / real_seconds)}


def _rows(report: dict, decoder: str, regime: str) -> list[str]:
    budgets = [b for b in report["budgets"] if f"{b}|{decoder}|{regime}" in report["summary"]]
    sources = list(dict.fromkeys(s for b in budgets for s in report["summary"][f"{b}|{decoder}|{regime}"]))
    lines = ["| source | " + " | ".join(f"{b} per class" for b in budgets) + " |", "| --- |" + " --- |" * len(budgets)]
    for source in sources:
        cells = []
        for b in budgets:
            cell = report["summary"][f"{b}|{decoder}|{regime}"].get(source)
            cells.append("—" if cell is None else pct(cell["uar"]) + (f" ({points(cell['vs_random'])})"
                                                                      if "vs_random" in cell else ""))
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return lines


def _per_draw_rows(report: dict, sources=("random", "k-means", "Gaussian iid", "Gaussian distilled", "GAN iid",
                                           "distilled")) -> list[str]:
    budgets = [b for b in report["budgets"] if f"{b}|linear|hard" in report["per_draw"]]
    lines = ["| draw | source | " + " | ".join(f"{b} per class" for b in budgets) + " |",
             "| --- | --- |" + " --- |" * len(budgets)]
    for draw in report["draws"]:
        for source in sources:
            cells = [report["per_draw"][f"{b}|linear|hard"][draw].get(source) for b in budgets]
            if any(cells):
                lines.append(f"| {draw} | {source} | " + " | ".join(pct(c) for c in cells) + " |")
    return lines


def render(report: dict) -> str:
    """The RESULTS.md section: the data-efficiency table per decoder and regime, the tests, the targets."""
    n, draws = len(report["seeds"]), report["draws"]
    lines = [f"Command: `python benchmarks/data_efficiency.py --draws {','.join(_draw_arg(d) for d in draws)} "
             f"--seeds {n}{_choices(report)}` — protocol "
             f"`{report['protocol']}`; {report['wall_minutes']:.0f} min wall, {report['cpu_minutes']:.0f} CPU-min "
             "on 2 cores.", "",
             f"Test UAR (%), mean ± 95 % CI over {len(draws)} draws x {n} seeds (the improvement over the random "
             "real subset of the same budget, UAR points ± 95 % CI of the paired differences). `distilled`: the "
             "generator's set whose method scored best on dev, per draw and seed. Linear head, hard labels:", ""]
    lines += _rows(report, "linear", "hard")
    for decoder in report["decoders"][1:]:
        if any(f"{b}|{decoder}|hard" in report["summary"] for b in report["budgets"]):
            lines += ["", f"{decoder} decoder, hard labels:", ""] + _rows(report, decoder, "hard")
    for regime in report["regimes"]:
        lines += ["", f"Linear head, {regime} regime (every source in it trained the same way):", ""]
        lines += _rows(report, "linear", regime)
    lines += ["", "Per draw, linear head, hard labels: test UAR (%), mean ± 95 % CI over its seeds:", ""]
    lines += _per_draw_rows(report)
    lines += ["", "The dev-chosen distilled set against the best selection baseline (the ladder's best on test: the "
              "comparison most favourable to the baselines), UAR points ± 95 % CI and McNemar p (median over seed "
              "pairs) per draw:", "", "| budget | decoder | best selection | distilled − best | p per draw |",
              "| --- | --- | --- | --- | --- |"]
    for name, test in report["tests"].items():
        budget, decoder, regime = _parse(name)
        if regime == "hard":
            lines.append(f"| {budget} | {decoder} | {test['best_selection']} | {points(test['vs_best'])} | "
                         + ", ".join(f"{d} {p:.2g}" for d, p in test["p"].items()) + " |")
    if report["cost"]:
        c = report["cost"]
        lines += ["", f"At 10 per class the distilled set takes {c['set_bytes'] / 2**20:.2f} MiB against the real "
                  f"training split's {c['real_bytes'] / 2**20:.1f} MiB ({c['bytes_reduction_pct']:.1f} % less), and "
                  f"its downstream reaches its checkpoint in {c['set_seconds']:.1f} s against "
                  f"{c['real_seconds']:.1f} s ({c['seconds_reduction_pct']:.0f} % less)."]
    lines += ["", "Targets (measured above):", "", *targets(report)]
    return "\n".join(lines) + "\n"


def _choices(report: dict) -> str:
    """The command's --methods, --decoders and --regimes where they are not the defaults."""
    chosen = {"methods": (report["methods"], list(METHODS)), "decoders": (report["decoders"], list(DECODERS)),
              "regimes": (report["regimes"], [])}
    return "".join(f" --{flag} {' '.join(value)}" for flag, (value, default) in chosen.items()
                   if sorted(value) != sorted(default))


def _draw_arg(name: str) -> str:
    preset, seed, fold = name.split("-")
    return f"{preset}:{seed[1:]}:{fold[1:]}"


def targets(report: dict) -> list[str]:
    """The issue's targets, each met or missed with its numbers."""
    s = report["summary"]

    def mean(budget, source, decoder="linear"):
        cell = s.get(f"{budget}|{decoder}|hard", {}).get(source)
        return None if cell is None else 100 * cell["uar"]["mean"]

    checks = []
    for small, large in ((1, 10), (10, 100)):
        ours, theirs = mean(small, "distilled"), mean(large, "random")
        if ours is not None and theirs is not None:
            checks.append((ours >= theirs, f"distilled at {small} per class ≥ a random real subset of {large}: "
                                           f"{ours:.1f} vs {theirs:.1f}"))
    for budget in (1, 10):
        test = report["tests"].get(f"{budget}|linear|hard")
        if test:
            ok = test["vs_best"]["mean"] >= 5 and all(p < 0.05 for p in test["p"].values())
            checks.append((ok, f"at {budget} per class ≥ 5 points above the best selection baseline "
                               f"({test['best_selection']}), p < 0.05 on every draw: {points(test['vs_best'])} "
                               f"points, p " + ", ".join(f"{p:.2g}" for p in test["p"].values())))
    decoders = [d for d in report["decoders"] if f"10|{d}|hard" in report["tests"]]
    if not decoders:
        return [f"- {'met' if ok else '**missed**'}: {text}" for ok, text in checks]
    met = [d for d in decoders if report["tests"][f"10|{d}|hard"]["vs_best"]["mean"] >= 5
           and all(p < 0.05 for p in report["tests"][f"10|{d}|hard"]["p"].values())]
    checks.append((len(met) >= 3, f"the same at 10 per class on ≥ 3 of {len(decoders)} decoders: met on "
                                  f"{met or 'none'} (" + ", ".join(
                                      f"{d} {points(report['tests'][f'10|{d}|hard']['vs_best'])}"
                                      for d in decoders) + ")"))
    if report["cost"]:
        c = report["cost"]
        checks.append((c["bytes_reduction_pct"] >= 95 and c["seconds_reduction_pct"] >= 95,
                       f"storage and downstream time at 10 per class ≥ 95 % below the real split's: "
                       f"{c['bytes_reduction_pct']:.1f} % and {c['seconds_reduction_pct']:.0f} %"))
    return [f"- {'met' if ok else '**missed**'}: {text}" for ok, text in checks]


def figure(report: dict, stem: Path) -> None:
    """UAR vs samples per class (log scale): random subsets, the best selection baseline, the Gaussian with and
    without selection, the distilled sets; the real training split and chance as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, budgets = report["summary"], report["budgets"]
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    best = {b: report["tests"][f"{b}|linear|hard"]["best_selection"] for b in budgets
            if f"{b}|linear|hard" in report["tests"]}
    lines = {"random subset": (lambda b: s[f"{b}|linear|hard"].get("random"), "tab:grey", "o"),
             "best selection baseline": (lambda b: s[f"{b}|linear|hard"].get(best.get(b)), "tab:brown", "s"),
             "Gaussian iid": (lambda b: s[f"{b}|linear|hard"].get("Gaussian iid"), "tab:olive", "v"),
             "Gaussian distilled (dev-chosen)": (lambda b: s[f"{b}|linear|hard"].get("Gaussian distilled"),
                                                 "tab:green", "^"),
             "GAN iid": (lambda b: s[f"{b}|linear|hard"].get("GAN iid"), "tab:pink", "D"),
             "distilled (dev-chosen)": (lambda b: s[f"{b}|linear|hard"].get("distilled"), "tab:red", "*")}
    for label, (get, colour, marker) in lines.items():
        cells = [(b, get(b)) for b in budgets if f"{b}|linear|hard" in s and get(b) is not None]
        x = np.array([b for b, _ in cells])
        mean = np.array([100 * c["uar"]["mean"] for _, c in cells])
        err = np.array([mean - [100 * c["uar"]["low"] for _, c in cells], [100 * c["uar"]["high"] for _, c in cells]
                        - mean])
        ax.errorbar(x, mean, yerr=err, marker=marker, capsize=3, color=colour, label=label)
    ax.axhline(25.0, color="grey", linestyle=":", label="chance (25.0)")
    real = report.get("real_full")
    if real is not None:
        ax.axhline(100 * real, color="black", linestyle="--", label=f"real training split ({100 * real:.1f})")
    ax.set_xscale("log")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("samples per class (log scale)")
    ax.set_ylabel("UAR on the real test split (%)")
    ax.set_title(f"Data efficiency: {len(report['draws'])} corpus draws x {len(report['seeds'])} seeds, linear head "
                 "(mean ± 95 % CI)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(stem.with_suffix(".png"), dpi=150)
    fig.savefig(stem.with_suffix(".svg"))
    plt.close(fig)


def write(report: dict, markdown: str) -> None:
    """The JSON, the figure and the RESULTS.md section (replaced between its markers)."""
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "data_efficiency.json").write_text(json.dumps(report, indent=1))
    (HERE / "figures").mkdir(exist_ok=True)
    figure(report, HERE / "figures" / "data_efficiency")
    section = f"{START}\n{markdown}\n![data efficiency](figures/data_efficiency.png)\n{END}"
    text = RESULTS_MD.read_text()
    if START in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text += f"\n## Data efficiency at 1-100 samples per class (`benchmarks/data_efficiency.py`)\n\n{section}\n"
    RESULTS_MD.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
