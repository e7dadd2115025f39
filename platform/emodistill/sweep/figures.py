"""Figures a sweep logs: each trial's learning curves, and those of its report (one colour per setting in all)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: sweeps run on cluster nodes without a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    from emodistill.sweep.report import SweepReport

DPI = 150  # PNGs of about 1100 px wide: readable in MLflow's artifact viewer without zooming


def learning_curves(curves: dict[int, dict[str, list[tuple[int, float]]]], selected_step: int,
                    title: str, decoder: str) -> Figure:
    """Dev (dashed) and test (solid) UAR by `decoder` over a trial's generator steps, a colour per budget; the chosen
    step marked."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for i, (n, splits) in enumerate(sorted(curves.items())):
        for split, style in (("test", "-"), ("dev", "--")):
            points = sorted(splits.get(split, []))
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, marker="o", color=f"C{i}", label=f"{split}, {n} per class")
    ax.axvline(selected_step, color="grey", linestyle=":", label=f"chosen on dev (step {selected_step})")
    ax.set_xlabel("generator step")
    ax.set_ylabel(f"UAR ({decoder} head)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return fig


def setting_colours(names: list[str]) -> dict[str, tuple]:
    """One colour per setting, the same in every figure of a report (tab10, tab20 beyond ten settings)."""
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def uar_by_budget(report: SweepReport) -> Figure:
    """Test UAR vs utterances per class, a line per setting with its confidence intervals as bars; the real-data
    reference and chance as horizontal lines."""
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=DPI, layout="constrained")
    colours = setting_colours([row.name for row in report.rows])
    handles = []
    for i, row in enumerate(report.rows):
        budgets = sorted(row.cells)
        # Each setting a little to the side (log axis), so that bars of close values stay apart.
        shift = 1 + 0.03 * (i - (len(report.rows) - 1) / 2)
        handles.append(ax.errorbar([n * shift for n in budgets], [100 * row.cells[n].test for n in budgets],
                                   yerr=[100 * (_spread(row.cells[n]) or 0.0) for n in budgets], marker="o",
                                   capsize=4, color=colours[row.name], label=row.name))
    if report.reference is not None:
        handles.append(ax.axhline(100 * report.reference, color="black", linestyle="--",
                                  label=f"real data, whole train set ({100 * report.reference:.1f} %)"))
    if report.chance is not None:
        handles.append(ax.axhline(100 * report.chance, color="grey", linestyle=":",
                                  label=f"chance ({100 * report.chance:.1f} %)"))
    ax.set_xscale("log")
    ax.set_xticks(report.budgets, [str(n) for n in report.budgets])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.set_xlabel("utterances per class (generated, balanced)")
    ax.set_ylabel(f"test UAR (%, {report.decoder} head)")
    known = any(_spread(cell) is not None for row in report.rows for cell in row.cells.values())
    title = ("bars: standard deviation over folds" if report.several_folds else "bars: 95 % confidence interval"
             ) if known else "one trial, one repeat: no interval"
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title_fontsize=8,
              title=title)
    # The figure's title, not the axes': centred over the legend too, so that a long sweep name is not cut.
    fig.suptitle(f"{report.experiment}: test UAR by budget")
    return fig


def _spread(cell) -> float | None:
    """A cell's error bar: the standard deviation over folds, else its confidence interval's half-width."""
    return cell.std if cell.std is not None else cell.half_width


def learning_curves_by_setting(report: SweepReport) -> Figure:
    """Dev (dashed) and test (solid) UAR over generator steps, a panel per budget and a colour per setting (the
    mean over a setting's trials)."""
    fig, axes = plt.subplots(1, len(report.budgets), figsize=(2 + 4.5 * len(report.budgets), 4.5), dpi=DPI,
                             sharey=True, squeeze=False, layout="constrained")
    colours = setting_colours([row.name for row in report.rows])
    for ax, n in zip(axes[0], report.budgets):
        for row in report.rows:
            for split, style in (("test", "-"), ("dev", "--")):
                points = row.curves.get(n, {}).get(split, [])
                if points:
                    steps, values = zip(*points)
                    ax.plot(steps, [100 * v for v in values], style, marker="o", markersize=3,
                            color=colours[row.name])
        ax.set_title(f"{n} utterances per class")
        ax.set_xlabel("generator step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"UAR (%, {report.decoder} head)")
    handles = [Line2D([], [], color=colours[row.name], label=row.name) for row in report.rows]
    handles += [Line2D([], [], color="black", linestyle=style, label=split)
                for split, style in (("test split", "-"), ("dev split", "--"))]
    fig.legend(handles=handles, fontsize=8, loc="outside right center")
    fig.suptitle(f"{report.experiment}: learning curves by setting")
    return fig


def figure_svg(figure: Figure) -> str:
    """The figure as SVG markup without its XML prolog, to embed in an HTML page."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]
