"""Figures a sweep logs: its trials compared on the objective."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: sweeps run on cluster nodes without a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def objective_chart(values: dict[str, float | None], metric: str, mode: str, best: str | None) -> Figure:
    """A bar per trial (`best` highlighted; trials with no value shown as failed) of the sweep's objective."""
    names = list(values)
    scores = [values[n] if values[n] is not None else 0.0 for n in names]
    colors = ["tab:orange" if n == best else "tab:blue" if values[n] is not None else "lightgrey" for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.5), layout="constrained")
    ax.bar(range(len(names)), scores, color=colors)
    for i, name in enumerate(names):
        label = "failed" if values[name] is None else f"{values[name]:.3f}"
        ax.annotate(label, (i, scores[i]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial ({mode}); best in orange")
    return fig


def learning_curves(curves: dict[int, dict[str, list[tuple[int, float]]]], selected_step: int,
                    title: str) -> Figure:
    """Dev (dashed) and test (solid) UAR over a trial's generator steps, a colour per budget; the chosen step marked."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for i, (n, splits) in enumerate(sorted(curves.items())):
        for split, style in (("test", "-"), ("dev", "--")):
            points = sorted(splits.get(split, []))
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, marker="o", color=f"C{i}", label=f"{split}, {n} per class")
    ax.axvline(selected_step, color="grey", linestyle=":", label=f"chosen on dev (step {selected_step})")
    ax.set_xlabel("generator step")
    ax.set_ylabel("UAR")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return fig
