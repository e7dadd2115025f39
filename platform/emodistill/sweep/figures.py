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


def uar_curves(curves: dict[int, list[tuple[int, float]]]) -> Figure:
    """UAR on the real test split over the trial's training steps, one line per budget (samples per class)."""
    fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    for n, points in curves.items():
        steps, values = zip(*sorted(points)) if points else ((), ())
        ax.plot(steps, values, marker="o", label=f"{n} per class")
    ax.set_xlabel("generator step")
    ax.set_ylabel("UAR (real test split)")
    ax.legend(fontsize=7)
    return fig
