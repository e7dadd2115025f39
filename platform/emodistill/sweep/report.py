"""The sweep report, as a reader of the paper wants it: its Table 2, read from the sweep's MLflow runs.

Rows are what the sweep varied (trials that differ only by seed or index share a row), after the real-data
reference; columns are the evaluated budgets (utterances per class). A cell holds the test UAR mean ± the half-width
of its 95 % confidence interval (over the row's trials when it has several, else over the evaluation repeats), its
ratio to the reference, McNemar's marks as in the paper (†: differs from the Baseline, ‡: from +L_SML, both of the
same architecture and settings) and, beside it, the dev UAR that chose the checkpoint. The same report is printed
by `emodistill report --experiment`, and logged to the sweep's parent run when the sweep ends: markdown in its
description, a table for MLflow's table view, an HTML page and the figures (sweep/figures.py).

A sweep over several folds (leave-one-session-out) reports, as SUPERB does, each cell as the mean ± standard deviation
over the folds (each fold's value: the mean over its trials), and a per-fold table beside it; each fold's trials are
compared with that fold's reference and siblings only (McNemar needs the same test utterances). The champion is then
the best trial (on dev) of the setting whose dev objective, averaged over the folds, is highest.
"""

from __future__ import annotations

import html
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from emodistill.downstream import DEFAULT_DECODER
from emodistill.errors import EmodistillError
from emodistill.evaluate import mcnemar
from emodistill.evaluate.protocol import decoder_key, split_decoder
from emodistill.evaluate.stats import ci_half_width, mean_ci
from emodistill.files import read_json
from emodistill.sweep.figures import figure_svg, learning_curves_by_setting, uar_by_budget
from emodistill.sweep.names import sibling_name
from emodistill.tracking.champion import champion_trial, fold_of, mean_over_folds, score
from emodistill.tracking.naming import setting_name, trial_index
from emodistill.tracking.best import OBJECTIVE_PARAM, find_experiment_id, latest_sweep
from emodistill.tracking.registry import CHAMPION
from emodistill.tracking.runs import FEATURES_TAG, KIND_TAG, VARIANT_TAG, sweep_runs
from emodistill.tracking.store import reading_client
from emodistill.tracking.trial import PREDICTIONS_FILE, TrialRun

BASELINE_VARIANT = "baseline"
SML_VARIANT = "sml"
RANDOM_SOURCE = "random"  # the baseline the improvement of every row is measured against
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
REPORT_DIR = "report"  # the parent run's artifacts: report.html, table.json, the figures as PNG and SVG
FIGURES = {"uar_vs_ppc": uar_by_budget, "learning_curves": learning_curves_by_setting}


@dataclass
class Cell:
    """One setting at one budget: test UAR (mean, CI half-width when known), dev UAR, McNemar p-values; over several
    folds, the mean and standard deviation over them, and each fold's own cell."""

    test: float
    half_width: float | None
    dev: float | None
    p_baseline: float | None = None
    p_sml: float | None = None
    std: float | None = None  # over the folds, when the sweep ran several
    folds: dict[int, Cell] = field(default_factory=dict)  # fold -> the cell of that fold's trials


@dataclass
class Row:
    """The finished trials of one setting (named like its trials, less their seed or index)."""

    name: str
    variant: str | None
    runs: list[Run]
    best: Run  # its best trial on the objective: the one its McNemar tests compare
    best_by_fold: dict[int | None, Run] = field(default_factory=dict)  # the same, among the trials of each fold
    cells: dict[int, Cell] = field(default_factory=dict)
    curves: dict[int, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)  # N -> dev/test points


@dataclass
class SweepReport:
    """Everything the report shows, read from one sweep's parent run and its children."""

    experiment: str
    parent_run_id: str
    objective: str
    budgets: list[int]
    repeats: int
    reference: float | None  # uar_real_full of the sweep's reference run (the mean over folds, with several)
    chance: float | None
    rows: list[Row]
    statuses: dict[str, int]  # trials by status
    space: str | None = None
    features: str | None = None
    champion: str | None = None  # "NAME version V", when the sweep registered one
    folds: list[int | None] = field(default_factory=lambda: [None])  # the folds its trials ran on
    references: dict[int | None, float] = field(default_factory=dict)  # fold -> its reference's uar_real_full
    # The baseline ladder and the Gaussian the reference runs scored: source -> budget -> test UAR (mean over folds)
    baselines: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def decoder(self) -> str:
        """The decoder whose scores the table shows: the one that scores the objective (linear for
        `dev_uar_ppc<N>`)."""
        return split_decoder(self.objective)[1]

    def key(self, n: int) -> str:
        """The condition key of budget `n` under the report's decoder (`ppc100`, `ppc100_mean_std_mlp`)."""
        return decoder_key(f"ppc{n}", self.decoder)

    def versus_random(self, cell: Cell | None, n: int) -> float | None:
        """UAR points of `cell` above the random real subset of budget `n` (None when either is unknown)."""
        random = self.baselines.get(RANDOM_SOURCE, {}).get(n)
        return None if cell is None or random is None else 100 * (cell.test - random)

    @property
    def several_folds(self) -> bool:
        """True when its trials ran on more than one fold (cells are then means ± std over folds)."""
        return len(self.folds) > 1

    @property
    def reference_std(self) -> float | None:
        """The references' standard deviation over the folds (None with one fold)."""
        values = list(self.references.values())
        return statistics.stdev(values) if self.several_folds and len(values) > 1 else None

    def sibling(self, row: Row, variant: str) -> Row | None:
        """The row of the same architecture and settings as `row` with the variant `variant`, if the sweep has it."""
        if row.variant is None:
            return None
        return next((other for other in self.rows if other.name == sibling_name(row.name, variant)), None)


class Predictions:
    """The trials' test predictions (their predictions.json), each downloaded once."""

    def __init__(self, client: MlflowClient):
        self.client, self.loaded = client, {}

    def of(self, run_id: str) -> dict:
        """`{"y_true": [...], "ppc10": [...], ...}` of the run."""
        if run_id not in self.loaded:
            with tempfile.TemporaryDirectory(prefix="emodistill-predictions-") as scratch:
                path = self.client.download_artifacts(run_id, PREDICTIONS_FILE, scratch)
                self.loaded[run_id] = read_json(path, dict[str, list[int]],
                                                missing=f"missing from trial run {run_id}")
        return self.loaded[run_id]

    def pvalues(self, ours: str, theirs: str) -> dict[str, float]:
        """McNemar p-value per condition (`ppc100`, `ppc100_imbalanced`, ...) between two trials' downstreams
        (repeat 0's, on the test split)."""
        a, b = self.of(ours), self.of(theirs)
        return {key: mcnemar(a["y_true"], b[key], a[key]).pvalue for key in a if key.startswith("ppc") and key in b}


def load_report(experiment: str, tracking_uri: str | None = None) -> SweepReport:
    """The report of the experiment's latest sweep (read only)."""
    client = reading_client(tracking_uri)
    parent = latest_sweep(client, find_experiment_id(client, experiment))
    if parent is None:
        raise EmodistillError(f"experiment {experiment!r} in {client.tracking_uri} holds no sweep (no parent run "
                              f"tagged {KIND_TAG}=sweep)")
    children = sweep_runs(client, parent.info.experiment_id, parent.info.run_id)
    report = sweep_report(client, parent, children, experiment, Predictions(client))
    report.champion = _champion(client, experiment, report)
    return report


def sweep_report(client: MlflowClient, parent: Run, children: list[Run], experiment: str,
                 predictions: Predictions) -> SweepReport:
    """The report of the sweep whose parent run is `parent` and whose runs are `children`."""
    trials = [run for run in children if run.data.tags.get(KIND_TAG) == "trial"]
    objective = parent.data.params.get(OBJECTIVE_PARAM, "")
    decoder = split_decoder(objective)[1]  # the table shows the scores of the head that chose
    real = decoder_key("uar_real_full", decoder)
    references = {fold_of(run): run.data.metrics[real] for run in children
                  if run.data.tags.get(KIND_TAG) == "baseline" and real in run.data.metrics}
    references = dict(sorted(references.items(), key=lambda item: (item[0] is None, item[0])))
    finished = [run for run in trials if run.info.status == "FINISHED"]
    rows = _rows(finished, objective)
    folds = sorted({fold_of(run) for run in finished}, key=lambda f: (f is None, f)) or [None]
    # The references of the folds the table shows (the ratios divide by their mean), not of folds whose trials all
    # failed.
    references = {fold: value for fold, value in references.items() if fold in folds} or references
    baselines = _baselines([run for run in children if run.data.tags.get(KIND_TAG) == "baseline"
                            and fold_of(run) in references], decoder)
    report = SweepReport(
        experiment=experiment, parent_run_id=parent.info.run_id, objective=objective,
        budgets=sorted({n for row in rows for run in row.runs for n in _budgets(run)}),
        repeats=int(parent.data.params.get("evaluation.repeats", 1)),
        reference=statistics.fmean(references.values()) if references else None, chance=None, rows=rows,
        statuses=dict(Counter(run.info.status for run in trials)), space=parent.data.tags.get("emodistill.space"),
        features=parent.data.tags.get(FEATURES_TAG), folds=folds, references=references, baselines=baselines)
    if rows:
        report.chance = 1 / len(set(predictions.of(rows[0].best.info.run_id)["y_true"]))
    for row in rows:
        _fill(client, row, report)
    for row in rows:
        _compare(row, report, predictions)
    return report


def _baselines(references: list[Run], decoder: str) -> dict[str, dict[int, float]]:
    """Source -> budget -> its test UAR by `decoder` (`{source}.uar_ppc{N}`, suffixed with any decoder but linear),
    averaged over the reference runs (one per fold)."""
    values: dict[str, dict[int, list[float]]] = {}
    for run in references:
        for key, value in run.data.metrics.items():
            source, dot, metric = key.rpartition(".")
            condition, scored_with = split_decoder(metric)
            if dot and scored_with == decoder and condition.startswith("uar_ppc") and condition[7:].isdigit():
                values.setdefault(source, {}).setdefault(int(condition[7:]), []).append(value)
    return {source: {n: statistics.fmean(v) for n, v in sorted(budgets.items())} for source, budgets in values.items()}


def _rows(trials: list[Run], objective: str) -> list[Row]:
    """The finished trials grouped by setting (over every fold), in the order the sweep started them."""
    groups: dict[str, list[Run]] = {}
    for run in sorted(trials, key=lambda r: trial_index(r.data.tags.get("ray.trial_id", ""))):
        groups.setdefault(setting_name(run.info.run_name), []).append(run)
    rows = []
    for name, runs in groups.items():
        by_fold: dict[int | None, list[Run]] = {}
        for run in runs:
            by_fold.setdefault(fold_of(run), []).append(run)
        best = {fold: max(members, key=lambda r: score(r, objective))
                for fold, members in by_fold.items()}
        rows.append(Row(name=name, variant=runs[0].data.tags.get(VARIANT_TAG), runs=runs, best_by_fold=best,
                        best=max(runs, key=lambda r: score(r, objective))))
    return rows


def _budgets(run: Run) -> list[int]:
    """The balanced budgets N whose test UAR `uar_ppc{N}` the run logged."""
    return [int(key[7:]) for key in run.data.metrics if key.startswith("uar_ppc") and key[7:].isdigit()]


def _cell(runs: list[Run], key: str, repeats: int) -> Cell | None:
    """The cell of `runs` (trials of one setting, on one fold) at condition `key` (`ppc{N}`, suffixed with a decoder
    but linear); None when none scored it."""
    scored = [run.data.metrics for run in runs if f"uar_{key}" in run.data.metrics]
    if not scored:
        return None
    tests = [m[f"uar_{key}"] for m in scored]
    devs = [m[f"dev_uar_{key}"] for m in scored if f"dev_uar_{key}" in m]
    if len(tests) > 1:
        ci = mean_ci(tests, CONFIDENCE)
        test, half = ci.mean, ci.high - ci.mean
    else:  # one trial: the spread of its evaluation repeats, when there were several
        test, std = tests[0], scored[0].get(f"uar_{key}_std")
        half = ci_half_width(std, repeats, CONFIDENCE) if repeats > 1 and std is not None else None
    return Cell(test=test, half_width=half, dev=statistics.fmean(devs) if devs else None)


def _fold_cell(folds: dict[int, Cell]) -> Cell:
    """Mean ± standard deviation over the folds' cells, as SUPERB reports (each fold weighs the same)."""
    tests = [cell.test for cell in folds.values()]
    devs = [cell.dev for cell in folds.values() if cell.dev is not None]
    return Cell(test=statistics.fmean(tests), half_width=None, dev=statistics.fmean(devs) if devs else None,
                std=statistics.stdev(tests) if len(tests) > 1 else None, folds=folds)


def _fill(client: MlflowClient, row: Row, report: SweepReport) -> None:
    """The row's cells (over several folds: per fold, then mean ± std) and learning curves (the mean over its trials
    at each step)."""
    for n in report.budgets:
        if report.several_folds:
            folds = {fold: _cell([r for r in row.runs if fold_of(r) == fold], report.key(n), report.repeats)
                     for fold in report.folds}
            folds = {fold: cell for fold, cell in folds.items() if cell is not None}
            cell = _fold_cell(folds) if folds else None
        else:
            cell = _cell(row.runs, report.key(n), report.repeats)
        if cell is None:
            continue
        row.cells[n] = cell
        row.curves[n] = {split: _mean_curve(client, row.runs, f"{prefix}uar_{report.key(n)}")
                         for split, prefix in (("dev", "dev_"), ("test", ""))}


def _mean_curve(client: MlflowClient, runs: list[Run], metric: str) -> list[tuple[int, float]]:
    """(step, mean over `runs`) of a learning curve, at every step some run evaluated."""
    points: dict[int, list[float]] = {}
    for run in runs:
        for step, value in TrialRun(client, run.info.run_id, run.info.run_name).curve(metric):
            points.setdefault(step, []).append(value)
    return [(step, statistics.fmean(values)) for step, values in sorted(points.items())]


def _compare(row: Row, report: SweepReport, predictions: Predictions) -> None:
    """McNemar of the row's best trial against those of its Baseline and +L_SML siblings, per budget; over several
    folds, per fold (the best trials of that fold), the mean cell holding the largest p-value: marked only when the
    difference is significant on every fold."""
    for variant, attribute in ((BASELINE_VARIANT, "p_baseline"), (SML_VARIANT, "p_sml")):
        sibling = report.sibling(row, variant)
        # ‡ as in the paper: only rows that add to +L_SML, not the Baseline (whose † row says it already).
        if sibling is None or sibling is row or (variant == SML_VARIANT and row.variant == BASELINE_VARIANT):
            continue
        if not report.several_folds:
            pvalues = predictions.pvalues(row.best.info.run_id, sibling.best.info.run_id)
            for n, cell in row.cells.items():
                setattr(cell, attribute, pvalues.get(report.key(n)))
            continue
        for fold, ours in row.best_by_fold.items():
            theirs = sibling.best_by_fold.get(fold)
            pvalues = {} if theirs is None else predictions.pvalues(ours.info.run_id, theirs.info.run_id)
            for n, cell in row.cells.items():
                if fold in cell.folds:
                    setattr(cell.folds[fold], attribute, pvalues.get(report.key(n)))
        for cell in row.cells.values():
            values = [getattr(c, attribute) for c in cell.folds.values()]
            setattr(cell, attribute, max(values) if values and None not in values else None)


def _champion(client: MlflowClient, model_name: str, report: SweepReport) -> str | None:
    """"NAME version V" when the registry's champion of `model_name` is one of this sweep's trials."""
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    trials = {run.info.run_id for row in report.rows for run in row.runs}
    return f"{model_name} version {version.version}" if version.run_id in trials else None


def best_trial(report: SweepReport) -> Run | None:
    """The sweep's champion among its finished trials, by the one rule (emodistill.tracking.champion)."""
    return champion_trial([run for row in report.rows for run in row.runs], report.objective)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _cell_text(cell: Cell | None, reference: float | None) -> str:
    """`41.70 ± 2.10 †‡ (0.76×)` (± the CI's half-width, or the standard deviation over folds)."""
    if cell is None:
        return "—"
    spread = cell.std if cell.std is not None else cell.half_width
    text = _percent(cell.test) + (f" ± {100 * spread:.2f}" if spread is not None else "")
    marks = "".join(mark for mark, p in (("†", cell.p_baseline), ("‡", cell.p_sml))
                    if p is not None and p < SIGNIFICANCE)
    ratio = f" ({cell.test / reference:.2f}×)" if reference else ""
    return text + (f" {marks}" if marks else "") + ratio


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def table(report: SweepReport) -> tuple[list[str], list[list[str]]]:
    """The results table as text: header and rows (the reference and the baselines first), shared by markdown and
    HTML; beside each budget, the dev UAR and the improvement over the random real subset (points)."""
    header = ["setting", "trials", "whole train set"]
    for n in report.budgets:
        header += [f"{n} per class", "dev", "vs random"]
    rows = []
    if report.reference is not None:
        std = report.reference_std
        whole = _percent(report.reference) + ("" if std is None else f" ± {100 * std:.2f}")
        rows.append(["real data (reference)", "—", whole] + ["—"] * (3 * len(report.budgets)))
    for source, budgets in report.baselines.items():
        cells = [f"{source} (baseline)", "—", "—"]
        for n in report.budgets:
            cell = None if n not in budgets else Cell(test=budgets[n], half_width=None, dev=None)
            cells += [_cell_text(cell, report.reference), "—",
                      "—" if source == RANDOM_SOURCE else _points(report.versus_random(cell, n))]
        rows.append(cells)
    for row in report.rows:
        cells = [row.name, str(len(row.runs)), "—"]
        for n in report.budgets:
            cell = row.cells.get(n)
            cells += [_cell_text(cell, report.reference), _percent(cell.dev if cell else None),
                      _points(report.versus_random(cell, n))]
        rows.append(cells)
    return header, rows


def fold_table(report: SweepReport) -> tuple[list[str], list[list[str]]]:
    """The per-fold results of a sweep over several folds: a row per setting and fold (the references first), each
    cell the mean over that fold's trials, its ratio to that fold's reference and its McNemar marks."""
    header = ["setting", "fold", "trials", "whole train set"]
    for n in report.budgets:
        header += [f"{n} per class", "dev"]
    rows = [["real data (reference)", str(fold), "—", _percent(value)] + ["—"] * (2 * len(report.budgets))
            for fold, value in report.references.items()]
    for row in report.rows:
        for fold in report.folds:
            trials = sum(fold_of(run) == fold for run in row.runs)
            if not trials:
                continue
            cells = [row.name, str(fold), str(trials), "—"]
            for n in report.budgets:
                cell = row.cells[n].folds.get(fold) if n in row.cells else None
                cells += [_cell_text(cell, report.references.get(fold)), _percent(cell.dev if cell else None)]
            rows.append(cells)
    return header, rows


def legend(report: SweepReport) -> str:
    """What the table's numbers and marks mean."""
    spread = (f"over the row's trials when it has several, else over the {report.repeats} evaluation repeats"
              if report.repeats > 1 else "over the row's trials (none shown for a single trial: one evaluation "
                                         "repeat)")
    chance = f" Chance: {_percent(report.chance)} %." if report.chance else ""
    scored_by = ("" if report.decoder == DEFAULT_DECODER else
                 f" (the {report.decoder} decoder, which scores the objective; the reference's and baselines' too)")
    head = (f"Test UAR (%) on the real test split of a downstream{scored_by} trained only on generated data, at each "
            f"budget (utterances per class)")
    if report.several_folds:
        folds = ", ".join(map(str, report.folds))
        return (f"{head}: mean ± standard deviation over the {len(report.folds)} folds ({folds}; "
                f"each fold's value is the mean over its trials, see the per-fold table), as SUPERB reports; (×) "
                f"ratio to the real-data reference (its mean over the folds); dev: the mean over the folds of the dev "
                f"UAR (%) that chose each generator's checkpoint; vs random: UAR points above the random real subset "
                f"of the same budget (its mean over the folds). † McNemar (two-sided, p < {SIGNIFICANCE}) differs "
                f"from the Baseline, ‡ from +L_SML (same architecture and settings; on each fold, the best trials "
                f"on {report.objective}); in the mean row, only when it does on every fold. Per fold, ± is the "
                f"half-width of the {100 * CONFIDENCE:.0f} % confidence interval {spread}.{chance}")
    return (f"{head}; ± half-width of the {100 * CONFIDENCE:.0f} % confidence interval {spread}; "
            f"(×) ratio to the real-data reference; dev: the dev UAR (%) that chose each generator's checkpoint; vs "
            f"random: UAR points above the random real subset of the same budget (the baselines' rows: the ladder "
            f"and the Gaussian scored by the reference run). † McNemar (two-sided, p < {SIGNIFICANCE}) differs from "
            f"the Baseline, ‡ from +L_SML (same architecture and settings; each row's best trial on "
            f"{report.objective}).{chance}")


def summary(report: SweepReport) -> str:
    """What ran, in a few sentences (no links)."""
    statuses = ", ".join(f"{count} {status.lower()}" for status, count in sorted(report.statuses.items()))
    space = f" of space `{report.space}`" if report.space else ""
    features = f"; features `{report.features}`" if report.features else ""
    text = (f"Sweep `{report.experiment}`{space}: {sum(report.statuses.values())} trials ({statuses or 'none'}), "
            f"objective `{report.objective}` (chooses each trial's checkpoint and the champion), budgets "
            f"{', '.join(map(str, report.budgets)) or '—'} per class, {report.repeats} evaluation repeat(s){features}.")
    if report.several_folds:
        text += (f" Folds {', '.join(map(str, report.folds))}: each setting ran on each; cells are means ± std "
                 "over them.")
    best = best_trial(report)
    if best is not None:
        metrics = best.data.metrics
        test = report.objective.removeprefix("dev_")  # its test twin
        if report.several_folds:
            row = next(row for row in report.rows if row.best is best)
            text += (f" Best setting on the mean {report.objective} over folds: `{row.name}` "
                     f"({_percent(mean_over_folds(row.runs, report.objective))} %); its best trial")
        else:
            text += " Best on dev"
        text += (f": `{best.info.run_name}` ({report.objective} {_percent(metrics[report.objective])} %, "
                 f"test {test} {_percent(metrics.get(test))} %)")
        text += f", registered as {report.champion} (alias {CHAMPION})." if report.champion else "."
    return text


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def results_markdown(report: SweepReport) -> str:
    """The table as markdown, with its legend (and the per-fold table, over several folds)."""
    text = _markdown_table(*table(report)) + f"\n\n{legend(report)}\n"
    if report.several_folds:
        text += f"\nPer fold:\n\n{_markdown_table(*fold_table(report))}\n"
    return text


def to_markdown(report: SweepReport) -> str:
    """The report as markdown: the summary, the table and its legend, where the figures are."""
    return (f"## Sweep report: {report.experiment}\n\n{summary(report)}\n\n{results_markdown(report)}\n"
            f"Figures: the parent run's artifacts {REPORT_DIR}/uar_vs_ppc.png and {REPORT_DIR}/learning_curves.png "
            "(and .svg).\n")


def to_html(report: SweepReport, figures: dict[str, str]) -> str:
    """A standalone page: the summary, the table, its legend and the figures (`figures`: name -> SVG text)."""
    tables = [table(report)] + ([fold_table(report)] if report.several_folds else [])
    html_tables = []
    for header, rows in tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in rows)
        html_tables.append(f"<table><tr>{head}</tr>{body}</table>")
    images = "".join(f"<figure>{svg}</figure>" for svg in figures.values())
    title = html.escape(f"Sweep report: {report.experiment}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
            "figure{margin:1em 0}svg{max-width:100%;height:auto}</style></head><body>"
            f"<h1>{title}</h1><p>{html.escape(summary(report))}</p>{html_tables[0]}"
            f"<p>{html.escape(legend(report))}</p>{''.join(html_tables[1:])}{images}</body></html>")


def _record(setting: str, trials: int | None, n: int | None, test: float, cell: Cell | None,
            reference: float | None) -> dict:
    """One record of table_data."""
    half = cell.half_width if cell else None
    return {"setting": setting, "trials": trials, "ppc": n, "test_uar": test,
            "ci_low": None if half is None else test - half, "ci_high": None if half is None else test + half,
            "ratio_to_real": test / reference if reference else None, "dev_uar": cell.dev if cell else None,
            "mcnemar_p_vs_baseline": cell.p_baseline if cell else None,
            "mcnemar_p_vs_sml": cell.p_sml if cell else None, "vs_random_points": None}


def table_data(report: SweepReport) -> dict[str, list]:
    """The table in long form (one record per setting and budget, numbers as fractions, the scoring decoder named)
    for MLflow's table view; over several folds, with `fold` (none for the mean over folds) and `test_std`, and a
    record per fold too."""
    records = []
    if report.reference is not None:
        records.append({**_record("real data (reference)", None, None, report.reference, None, report.reference),
                        **({"fold": None, "test_std": report.reference_std} if report.several_folds else {})})
        if report.several_folds:
            records += [{**_record("real data (reference)", None, None, value, None, value), "fold": fold,
                         "test_std": None} for fold, value in report.references.items()]
    for source, budgets in report.baselines.items():
        for n, value in budgets.items():
            cell = Cell(test=value, half_width=None, dev=None)
            records.append({**_record(f"{source} (baseline)", None, n, value, cell, report.reference),
                            "vs_random_points": report.versus_random(cell, n) if source != RANDOM_SOURCE else None,
                            **({"fold": None, "test_std": None} if report.several_folds else {})})
    for row in report.rows:
        for n, cell in row.cells.items():
            if not report.several_folds:
                records.append({**_record(row.name, len(row.runs), n, cell.test, cell, report.reference),
                                "vs_random_points": report.versus_random(cell, n)})
                continue
            records.append({**_record(row.name, len(row.runs), n, cell.test, cell, report.reference), "fold": None,
                            "test_std": cell.std})
            for fold, one in cell.folds.items():
                trials = sum(fold_of(run) == fold for run in row.runs)
                records.append({**_record(row.name, trials, n, one.test, one, report.references.get(fold)),
                                "fold": fold, "test_std": None})
    records = [{**record, "decoder": report.decoder} for record in records]  # the head every score is by
    return {key: [record[key] for record in records] for key in records[0]} if records else {}


def log_report(client: MlflowClient, report: SweepReport) -> None:
    """Log the report to the sweep's parent run: its description, the table, the HTML page and the figures."""
    run_id = report.parent_run_id
    client.set_tag(run_id, MLFLOW_RUN_NOTE, to_markdown(report))
    data = table_data(report)
    if data:
        client.log_table(run_id, data, f"{REPORT_DIR}/table.json")
    svgs = {}
    for name, draw in FIGURES.items():
        figure = draw(report)
        for extension in ("png", "svg"):
            client.log_figure(run_id, figure, f"{REPORT_DIR}/{name}.{extension}")
        svgs[name] = figure_svg(figure)
        plt.close(figure)
    client.log_text(run_id, to_html(report, svgs), f"{REPORT_DIR}/report.html")
