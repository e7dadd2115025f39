"""Figures of an evaluation report: UAR vs utterances per class, and confusion matrices."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: evaluations run on servers without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from emodistill.evaluate.baselines import RANDOM  # noqa: E402
from emodistill.evaluate.protocol import balanced_budgets  # noqa: E402
from emodistill.files import atomic_path  # noqa: E402


def uar_curve(report: Mapping) -> Figure:
    """UAR vs utterances per class: a line per source, the random-subset band (mean ± std), the real-data line."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for source in report["sources"]:
        points = [(n, source["conditions"][k]) for n, k in balanced_budgets(source["conditions"])]
        if not points:
            continue
        x = np.array([n for n, _ in points])
        mean = np.array([100 * c["mean"] for _, c in points])
        std = np.array([100 * c["std"] for _, c in points])
        if source["name"] == RANDOM:
            ax.fill_between(x, mean - std, mean + std, color="grey", alpha=0.3, label="random subset (± std)")
            ax.plot(x, mean, color="grey", linestyle=":")
        else:
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=source["name"])
    ax.axhline(100 * report["reference"]["uar_real_full"], color="black", linestyle="--", label="real data (full)")
    ax.set_xscale("log")
    budgets = [n for n, _ in balanced_budgets(report["conditions"])]
    ax.set_xticks(budgets, [str(n) for n in budgets])
    ax.minorticks_off()
    ax.set_xlabel("utterances per class (balanced)")
    ax.set_ylabel("UAR (%) on the real test split")
    ax.legend(fontsize=7)
    return fig


def confusion_figure(report: Mapping) -> Figure:
    """Row-normalised confusion matrices: the reference and each source at its largest balanced budget."""
    panels = [("real data (reference)", report["reference"]["confusion"])]
    for source in report["sources"]:
        budgets = balanced_budgets(source["conditions"])
        if budgets:
            n, key = budgets[-1]
            panels.append((f"{source['name']} @ {key}", source["conditions"][key]["confusion"]))
    labels = report["label_names"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), layout="constrained", squeeze=False)
    for ax, (title, matrix) in zip(axes[0], panels):
        counts = np.asarray(matrix, dtype=np.float64)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
        for (i, j), rate in np.ndenumerate(rates):
            ax.text(j, i, f"{rate:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if rate > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=8)
    return fig


def write_figures(report: Mapping, out_dir: str | Path) -> list[Path]:
    """Save uar_vs_ppc.png and confusion.png under out_dir (each written atomically)."""
    out_dir = Path(out_dir)
    written = []
    for name, make in (("uar_vs_ppc.png", uar_curve), ("confusion.png", confusion_figure)):
        fig = make(report)
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        written.append(out_dir / name)
    return written
