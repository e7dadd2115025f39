"""Does a distilled generator train a classifier as well as real data? The embedded corpus, fold 1, fbank.

    python benchmarks/distill_quality.py [--preset small|default] [--seeds 3] [--workers 2] [--work DIR]

For ppc 10, 50, 100 and the full-size balanced set (the real training split's size, equal classes; paper
Table 3) it trains the SUPERB downstream on each source only, picks its checkpoint on the real dev split and
reports UAR on the real test split, as mean ± 95 % CI over the seeds (a seed varies the generator's training,
the draw of samples and the downstream's initialisation together). Sources: the real training split (the
reference), a random real subset, a herding coreset, the class-conditional Gaussian generator, and GAN-ATT
trained with the `small` preset as the Baseline WGAN-GP (λ5 = λ6 = 0), +L_SML and +L_DIV+L_SML; then the
ablation of what the preset adds beyond the paper (+L_DIV+L_SML at ppc 100). Every generator keeps the
checkpoint that scored best on dev (2 draws at ppc 100, every train.eval_every steps); its learning curve
records dev and test UAR at each of those steps (test only reported, never used).

It writes benchmarks/results/distill_quality.json, the figures under benchmarks/figures/, and the section
between the `distill_quality` markers of benchmarks/RESULTS.md; it prints the same tables and the CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "platform"))  # runnable from a source checkout without installing

from emodistill.distill import distill, load_config, train_pool  # noqa: E402
from emodistill.downstream import DownstreamConfig, predict, train_downstream, uar  # noqa: E402
from emodistill.evaluate.baselines import class_herding_orders, gaussian_baseline, random_subset  # noqa: E402
from emodistill.evaluate.protocol import repeat_seed  # noqa: E402
from emodistill.evaluate.stats import mcnemar, mean_ci  # noqa: E402
from emodistill.features.store import dataset_fingerprint, load_splits  # noqa: E402
from emodistill.generator import class_counts, load  # noqa: E402

# The protocol's downstream for every score here (s3prl's recipe, shortened: the sets are small).
DOWNSTREAM = DownstreamConfig(max_steps=1000, eval_every=100, device="cpu")
BUDGETS = ("ppc10", "ppc50", "ppc100", "full")
SELECT_PPC, SELECT_DRAWS = 100, 2
PRESET = "small"  # the fixed recipe; its file says what it adds beyond the paper
VARIANTS = {  # the paper's Table 2 rows, on GAN-ATT
    "Baseline WGAN-GP": ["loss.lambda_div=0", "loss.lambda_sml=0"],
    "+L_SML": ["loss.lambda_div=0", "loss.lambda_sml=1"],
    "+L_DIV+L_SML": ["loss.lambda_div=1", "loss.lambda_sml=1"],
}
# +L_DIV+L_SML without each addition of the preset, and with none of them (the paper's losses, optimiser and
# critic as the `small` preset had them before this benchmark: Adam (0.5, 0.9) at 2e-4, n_critic 5, λ3 = λ4 = 1).
ABLATIONS = {
    "without critic_stats": ["model.critic_stats=false"],
    "without mean_path": ["model.mean_path=false"],
    "without ema": ["train.ema=0"],
    "paper-faithful": ["model.critic_stats=false", "model.mean_path=false", "train.ema=0", "loss.lambda_fm=1",
                       "loss.lambda_cls_fake=1", "optim.betas=[0.5, 0.9]", "optim.lr_g=2e-4", "optim.lr_d=2e-4",
                       "optim.n_critic=5"],
}
RESULTS_MD = HERE / "RESULTS.md"
START, END = "<!-- distill_quality:start -->", "<!-- distill_quality:end -->"

_splits = {}


def splits(features: str) -> dict:
    """The feature directory's splits, opened once per worker process (memory-mapped)."""
    if features not in _splits:
        import torch

        torch.set_num_threads(1)
        _splits[features] = load_splits(features)
    return _splits[features]


def score(features: str, train_set, seed: int) -> dict:
    """The protocol: downstream on `train_set`, checkpoint by real dev UAR, UAR and predictions on real test."""
    s = splits(features)
    trained = train_downstream(train_set, s["dev"], DOWNSTREAM.model_copy(update={"seed": seed}), progress=False)
    pred = predict(trained.model, s["test"], device="cpu")
    return {"uar": float(uar(s["test"].labels, pred)), "dev": float(trained.dev_uar), "pred": pred.tolist(),
            "seconds": trained.train_seconds}


def counts_of(features: str, budget: str) -> np.ndarray:
    """Utterances per class of a budget key (balanced; `full`: the real training split's size)."""
    train = splits(features)["train"]
    prior = train.class_counts()
    if budget == "full":
        return class_counts(0, train.label_names, prior, balanced=True, total=len(train))
    return class_counts(int(budget[3:]), train.label_names, prior, balanced=True)


def train_generator(features: str, name: str, overrides: list[str], seed: int, out: str, pools: str) -> dict:
    """Distil one generator, choosing its checkpoint on dev; its learning curve (dev and test) and cost."""
    s = splits(features)
    config = load_config(PRESET, [*overrides, f"train.seed={seed}", "train.device=cpu"])
    counts = counts_of(features, f"ppc{SELECT_PPC}")
    curve = []

    def evaluate(step, generator):
        runs = [score(features, generator.sample_features(
            {n: int(c) for n, c in zip(s["train"].label_names, counts)}, seed=repeat_seed(seed, d)), repeat_seed(seed, d))
            for d in range(SELECT_DRAWS)]
        point = {"step": step, "dev": float(np.mean([r["dev"] for r in runs])),
                 "test": float(np.mean([r["uar"] for r in runs]))}
        curve.append(point)
        return {"dev_uar_ppc100": point["dev"]}

    started = time.perf_counter()
    path = distill(s["train"], s["dev"], config, out, evaluate=evaluate, select="dev_uar_ppc100",
                   features_fingerprint=dataset_fingerprint(features), pool_cache_dir=pools, progress=False)
    metrics = load(path).config["metrics"]
    return {"name": name, "seed": seed, "path": str(path), "curve": curve, "seconds": time.perf_counter() - started,
            "train_seconds": metrics["train_seconds"], "selected_step": metrics.get("selected_step"),
            "steps": metrics["steps"], "parameters": load(path).num_parameters}


def score_source(features: str, source: dict, seed_index: int, budget: str) -> dict:
    """One cell of the table for one seed: draw the training set of `source` at `budget` and score it."""
    s = splits(features)
    train = s["train"]
    seed = repeat_seed(0, seed_index)
    counts = counts_of(features, budget)
    kind = source["kind"]
    if kind in ("random", "herding") and (counts > train.class_counts()).any():
        return {"skipped": "a real subset cannot exceed the real class sizes"}
    if kind == "real":
        train_set = train
    elif kind == "random":
        train_set = train.subset(random_subset(train, counts, seed))
    elif kind == "herding":
        train_set = train.subset(np.concatenate([np.asarray(o)[:int(n)] for o, n in zip(source["orders"], counts)]))
    elif kind == "gaussian":
        train_set = gaussian_baseline(train, source["frames"]).sample_features(_mapping(train, counts), seed=seed)
    else:  # a trained generator: the one of this seed
        train_set = load(source["paths"][seed_index]).sample_features(_mapping(train, counts), seed=seed)
    return score(features, train_set, seed)


def _mapping(train, counts) -> dict:
    return {name: int(c) for name, c in zip(train.label_names, counts)}


def prepare(work: Path, preset: str) -> str:
    """The embedded corpus of `preset` and its fbank features (fold 1), made once under `work`."""
    from emodistill.cli.sweep import demo_features

    return str(demo_features(work / preset, preset=preset))


def summarise(cells: list[dict], reference: list[dict]) -> dict:
    """Mean ± CI of test UAR, mean dev UAR, ratio to real-full, McNemar p against real-full per seed pair."""
    uars = [c["uar"] for c in cells]
    ci = mean_ci(uars)
    y = reference[0]["y_true"]
    p_real = [mcnemar(y, ref["pred"], c["pred"]).pvalue for ref, c in zip(reference, cells)]
    real = float(np.mean([r["uar"] for r in reference]))
    return {"uars": uars, "mean": ci.mean, "low": ci.low, "high": ci.high, "dev": float(np.mean([c["dev"] for c in cells])),
            "ratio": ci.mean / real, "p_vs_real": p_real}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "default"),
                        help="embedded corpus size (default small, the CPU one)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    parser.add_argument("--work", type=Path, default=Path("runs/distill_quality"), help="corpus, features, generators")
    parser.add_argument("--no-ablation", dest="ablation", action="store_false")
    parser.add_argument("--steps", type=int, help="override the preset's generator steps (quick checks)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="write RESULTS.md's section, the figures and the JSON (default yes)")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    features = prepare(args.work, args.preset)
    s = splits(features)
    extra = [f"train.steps={args.steps}"] if args.steps else []
    preset = load_config(PRESET)
    frames = preset.model.frames
    seeds = range(args.seeds)

    # The reference (and herding's embedding, from its seed-0 model) in this process.
    reference = []
    for i in seeds:
        cell = score(features, s["train"], repeat_seed(0, i))
        cell["y_true"] = s["test"].labels.tolist()
        reference.append(cell)
    from emodistill.downstream import embed_set

    ref_model = train_downstream(s["train"], s["dev"], DOWNSTREAM.model_copy(update={"seed": repeat_seed(0, 0)}),
                                 progress=False).model
    orders = [o.tolist() for o in class_herding_orders(s["train"], embed_set(ref_model, s["train"], device="cpu"))]

    # The L_SML pool once, here: the workers then all read it from the cache.
    pools = str(args.work / "pools")
    train_pool(s["train"], s["dev"], preset.pool, pools, fingerprint=dataset_fingerprint(features), progress=False)
    generators = dict(VARIANTS)
    if args.ablation:
        generators.update({f"+L_DIV+L_SML {name}": VARIANTS["+L_DIV+L_SML"] + o for name, o in ABLATIONS.items()})
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        trained_futures = {(name, i): pool.submit(train_generator, features, name, generators[name] + extra, i,
                                                  str(args.work / "generators" / _slug(name) / f"seed{i}"), pools)
                           for name in generators for i in seeds}
        sources = {"random subset": {"kind": "random"}, "herding": {"kind": "herding", "orders": orders},
                   "Gaussian": {"kind": "gaussian", "frames": frames}}
        baseline_futures = {(name, i, b): pool.submit(score_source, features, src, i, b)
                            for name, src in sources.items() for i in seeds for b in BUDGETS}
        trained = {key: f.result() for key, f in trained_futures.items()}
        for name in generators:
            sources[name] = {"kind": "generator", "paths": [trained[(name, i)]["path"] for i in seeds]}
        budgets_of = {name: BUDGETS if name in VARIANTS else ("ppc100",) for name in generators}
        generator_futures = {(name, i, b): pool.submit(score_source, features, sources[name], i, b)
                             for name in generators for i in seeds for b in budgets_of[name]}
        cells = {k: f.result() for k, f in {**baseline_futures, **generator_futures}.items()}

    report = build_report(args, reference, sources, generators, trained, cells, seeds, s)
    report["cpu_seconds"] = round(_cpu_seconds(), 1)
    report["wall_seconds"] = round(time.perf_counter() - wall, 1)
    markdown = render(report)
    print(markdown)
    if args.write:
        write(report, markdown)
    return 0


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower()


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build_report(args, reference, sources, generators, trained, cells, seeds, s) -> dict:
    """Every number of the section: per source and budget, the seeds' cells summarised; curves; ablation."""
    table = {}
    for name in sources:
        row = {}
        for b in BUDGETS:
            got = [cells.get((name, i, b)) for i in seeds]
            if any(c is None for c in got) or any("skipped" in c for c in got):
                continue
            row[b] = summarise(got, reference)
        table[name] = row
    baseline = "Baseline WGAN-GP"
    for name in generators:
        for b, summary in table[name].items():
            if name != baseline and b in table[baseline]:
                summary["p_vs_baseline"] = [mcnemar(reference[0]["y_true"], cells[(baseline, i, b)]["pred"],
                                                    cells[(name, i, b)]["pred"]).pvalue for i in seeds]
    real = mean_ci([r["uar"] for r in reference])
    costs = {name: {"train_seconds": [trained[(name, i)]["train_seconds"] for i in seeds],
                    "wall_seconds": [trained[(name, i)]["seconds"] for i in seeds],
                    "selected_step": [trained[(name, i)]["selected_step"] for i in seeds],
                    "steps": trained[(name, seeds[0])]["steps"], "parameters": trained[(name, seeds[0])]["parameters"],
                    "curves": [trained[(name, i)]["curve"] for i in seeds]} for name in generators}
    return {"preset": args.preset, "seeds": list(seeds), "recipe": PRESET,
            "splits": {k: len(v) for k, v in s.items()}, "real_full": {"uars": [r["uar"] for r in reference],
                                                                      "mean": real.mean, "low": real.low,
                                                                      "high": real.high},
            "table": table, "generators": costs, "variants": list(VARIANTS), "ablations": list(ABLATIONS)}


def _cell(summary: dict | None) -> str:
    if summary is None:
        return "—"
    half = (summary["high"] - summary["low"]) / 2
    return f"{100 * summary['mean']:.1f} ± {100 * half:.1f} ({summary['ratio']:.2f}x)"


def _median_p(values: list[float]) -> str:
    return f"{float(np.median(values)):.2g}"


def render(report: dict) -> str:
    """The RESULTS.md section: tables of UAR, McNemar, costs, ablation, and the targets."""
    real = report["real_full"]
    n = len(report["seeds"])
    lines = [f"Command: `python benchmarks/distill_quality.py --preset {report['preset']} --seeds {n}` — embedded "
             f"`{report['preset']}` corpus, fold 1 (train/dev/test {report['splits']['train']}/{report['splits']['dev']}/"
             f"{report['splits']['test']} utterances), fbank, the `{report['recipe']}` preset; "
             f"{report['wall_seconds'] / 60:.0f} min wall, {report['cpu_seconds'] / 60:.0f} CPU-min on 2 cores.",
             "",
             f"Test UAR (%), mean ± 95 % CI half-width over {n} seeds (ratio to the real training split). "
             f"Real training split (reference): **{100 * real['mean']:.1f} ± {100 * (real['high'] - real['low']) / 2:.1f}**; "
             "chance 25.0. `full` = as many utterances as the real training split, balanced.",
             "", "| source | " + " | ".join(BUDGETS) + " |", "| --- |" + " --- |" * len(BUDGETS)]
    for name, row in report["table"].items():
        if name in report["variants"] or not name.startswith("+L_DIV+L_SML "):
            lines.append(f"| {name} | " + " | ".join(_cell(row.get(b)) for b in BUDGETS) + " |")
    lines += ["", f"McNemar p (median over the {n} seed pairs; a seed's source against the same seed's reference "
                  "or Baseline):", "", "| source | budget | vs real-full | vs Baseline |", "| --- | --- | --- | --- |"]
    for name in ["Gaussian", *report["variants"]]:
        for b, summary in report["table"][name].items():
            versus = _median_p(summary["p_vs_baseline"]) if "p_vs_baseline" in summary else "—"
            lines.append(f"| {name} | {b} | {_median_p(summary['p_vs_real'])} | {versus} |")
    lines += ["", "Generators (GAN-ATT): training time to the end of the run, the dev-chosen step, size:", "",
              "| generator | steps | chosen step (per seed) | train s (mean) | parameters | ppc100 test | ppc100 dev |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, cost in report["generators"].items():
        summary = report["table"][name].get("ppc100")
        lines.append(f"| {name} | {cost['steps']} | {cost['selected_step']} | {np.mean(cost['train_seconds']):.0f} | "
                     f"{cost['parameters']:,} | {_cell(summary)} | {100 * summary['dev']:.1f} |")
    return "\n".join(lines) + "\n"


COLOURS = {"real training split": "black", "random subset": "tab:grey", "herding": "tab:brown", "Gaussian": "tab:green",
           "Baseline WGAN-GP": "tab:blue", "+L_SML": "tab:orange", "+L_DIV+L_SML": "tab:red"}


def _save(fig, stem: Path) -> None:
    fig.savefig(stem.with_suffix(".png"), dpi=150)
    fig.savefig(stem.with_suffix(".svg"))


def uar_vs_ppc_figure(report: dict, stem: Path) -> None:
    """Test UAR vs budget per source, 95 % CIs as bars; the real training split and chance as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    positions = {b: i for i, b in enumerate(BUDGETS)}
    shown = [n for n in report["table"] if not n.startswith("+L_DIV+L_SML ")]
    for k, name in enumerate(shown):
        row = report["table"][name]
        keys = [b for b in BUDGETS if b in row]
        x = np.array([positions[b] for b in keys]) + (k - len(shown) / 2) * 0.06
        y = np.array([row[b]["mean"] for b in keys]) * 100
        err = np.array([[row[b]["mean"] - row[b]["low"] for b in keys], [row[b]["high"] - row[b]["mean"] for b in keys]])
        ax.errorbar(x, y, yerr=err * 100, marker="o", capsize=3, color=COLOURS.get(name), label=name)
    real = report["real_full"]
    ax.axhline(100 * real["mean"], color="black", linestyle="--", label=f"real training split ({100 * real['mean']:.1f})")
    ax.axhspan(100 * real["low"], 100 * real["high"], color="black", alpha=0.08)
    ax.axhline(25.0, color="grey", linestyle=":", label="chance (25.0)")
    ax.set_xticks(range(len(BUDGETS)), [b if b == "full" else b[3:] for b in BUDGETS])
    ax.set_xlabel("samples per class (full: the real training split's size, balanced)")
    ax.set_ylabel("UAR on the real test split (%)")
    ax.set_title(f"Distillation quality, embedded {report['preset']} corpus, fold 1, fbank "
                 f"(mean ± 95 % CI, {len(report['seeds'])} seeds)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, stem)
    plt.close(fig)


def learning_curve_figure(report: dict, stem: Path) -> None:
    """Dev (dashed) and test (solid) UAR at ppc 100 vs generator step, mean over seeds, one colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    for name in report["variants"]:
        curves = report["generators"][name]["curves"]
        steps = [p["step"] for p in curves[0]]
        for split, style in (("test", "-"), ("dev", "--")):
            values = np.mean([[p[split] for p in curve] for curve in curves], axis=0) * 100
            ax.plot(steps, values, style, marker="o", color=COLOURS[name], label=f"{name}, {split}")
    ax.axhline(100 * report["real_full"]["mean"], color="black", linestyle="--", linewidth=0.8,
               label="real training split (test)")
    ax.axhline(25.0, color="grey", linestyle=":", label="chance")
    ax.set_xlabel("generator step")
    ax.set_ylabel(f"UAR at {SELECT_PPC} per class (%)")
    ax.set_title(f"GAN-ATT learning curves (mean of {len(report['seeds'])} seeds; dev chooses the checkpoint)",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, stem)
    plt.close(fig)


def write(report: dict, markdown: str) -> None:
    """results JSON, figures, and the RESULTS.md section (replaced between its markers)."""
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "distill_quality.json").write_text(json.dumps(report, indent=1))
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
