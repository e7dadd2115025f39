"""The evaluation report: one JSON document (results.json) and its markdown tables (figures: figures.py).

The UAR table reads like the paper's Tables 2-3: a row per training-set source (the real reference,
the real-data baselines, each generator), a column per condition, mean ± std over repeats in %,
and † where McNemar's test (repeat 0's model vs the reference) is significant.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from emodistill.errors import ConfigError
from emodistill.evaluate.privacy import ProbeResult
from emodistill.evaluate.protocol import EvalConfig, compare_predictions
from emodistill.evaluate.results import EvalResult, ReferenceResult
from emodistill.files import atomic_path, read_json

FORMAT = "emodistill-evaluation"
FORMAT_VERSION = 1
REFERENCE_COLUMN = "whole train set"


def assemble(config: EvalConfig, reference: ReferenceResult, baselines: Sequence[EvalResult] = (),
             generators: Sequence[EvalResult] = (), privacy: Mapping[str, ProbeResult] | None = None,
             cost: Mapping | None = None, features: str | None = None) -> dict:
    """The report document: config, reference, every source's results and metrics, pairwise tests, probe, cost."""
    sources = [{"kind": kind, **result.to_dict(), "metrics": result.metrics}
               for kind, results in (("baseline", baselines), ("generator", generators)) for result in results]
    keys = sorted({k for s in sources for k in s["conditions"]}, key=condition_order)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "features": features,
        "config": config.model_dump(mode="json"), "label_names": list(reference.label_names),
        "conditions": keys, "reference": reference.to_dict(), "sources": sources,
        "comparisons": pairwise_comparisons(generators, config.significance),
        "privacy": {name: probe.to_dict() for name, probe in (privacy or {}).items()},
        "cost": dict(cost or {}),
    }


def condition_order(key: str) -> tuple[bool, int, bool]:
    """Sort key of condition names: budgets ascending (balanced first), then the full-data size."""
    full = key.startswith("full")
    budget = 0 if full else int(key[3:].removesuffix("_imbalanced"))
    return full, budget, key.endswith("_imbalanced")


def pairwise_comparisons(results: Sequence[EvalResult], significance: float) -> list[dict]:
    """McNemar between every pair of sources (e.g. a generator vs its ablation), per shared condition."""
    rows = []
    for a, b in itertools.combinations(results, 2):
        for key, (test, significant) in compare_predictions(a, b, significance).items():
            rows.append({"a": a.name, "b": b.name, "condition": key, "a_right_b_wrong": test.b,
                         "a_wrong_b_right": test.c, "pvalue": test.pvalue, "significant": significant})
    return rows


def write_results(report: Mapping, path: str | Path) -> Path:
    """Write the report as JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    return path


def read_results(path: str | Path) -> dict:
    """A report written by write_results, checked for its format."""
    path = Path(path)
    report = read_json(path, missing="results file not found")
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an emodistill evaluation report (expected format {FORMAT!r})")
    return report


def _cell(condition: Mapping | None, significance: float) -> str:
    if condition is None:
        return "—"
    mark = "†" if condition["mcnemar_p"] is not None and condition["mcnemar_p"] < significance else ""
    return f"{100 * condition['mean']:.2f} ± {100 * condition['std']:.2f}{mark}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def results_table(report: Mapping) -> str:
    """UAR (%) per source and condition, mean ± std over repeats; † = McNemar-significant vs the reference."""
    significance = report["config"]["significance"]
    keys = report["conditions"]
    reference = ["real data (reference)", f"{100 * report['reference']['uar_real_full']:.2f}"] + ["—"] * len(keys)
    rows = [reference] + [[f"{s['name']} ({s['kind']})", "—"] + [_cell(s["conditions"].get(k), significance)
                                                               for k in keys] for s in report["sources"]]
    repeats = report["config"]["repeats"]
    legend = (f"UAR (%) on the real test split, mean ± std over {repeats} repeat(s). † McNemar (two-sided, "
              f"repeat 0's model) differs from the reference at p < {significance}.")
    return _markdown(["source", REFERENCE_COLUMN, *keys], rows) + "\n\n" + legend


def comparisons_table(report: Mapping) -> str:
    """Pairwise McNemar tests between generators (empty string when there are none)."""
    rows = [[c["a"], c["b"], c["condition"], str(c["a_right_b_wrong"]), str(c["a_wrong_b_right"]),
             f"{c['pvalue']:.4g}", "yes" if c["significant"] else "no"] for c in report["comparisons"]]
    if not rows:
        return ""
    return _markdown(["a", "b", "condition", "a right, b wrong", "a wrong, b right", "p", "significant"], rows)


def privacy_table(report: Mapping) -> str:
    """Speaker-ID accuracy (%) per embedding (paper Table 4; lower = less speaker information)."""
    rows = [[name, f"{100 * p['accuracy']:.2f}", f"{100 * p['chance']:.2f}", str(p["speakers"])]
            for name, p in report["privacy"].items()]
    return _markdown(["embedding", "speaker-ID accuracy", "majority speaker", "speakers"], rows) if rows else ""


def cost_table(report: Mapping) -> str:
    """Storage per form of the training set (paper Table 1) and downstream time to its checkpoint."""
    size, time = report["cost"].get("size"), report["cost"].get("time")
    parts = []
    if size:
        audio = size["audio_bytes"]
        rows = [["audio", "—" if audio is None else f"{audio / 2**20:.2f}", "—"],
                ["features", f"{size['feature_bytes'] / 2**20:.2f}",
                 f"{size['features_reduction_vs_audio_pct']:.1f}" if audio is not None else "—"]]
        basis = "audio" if audio is not None else "features"
        rows += [[name, f"{g['bytes'] / 2**20:.2f}", f"{g[f'reduction_vs_{basis}_pct']:.1f}"]
                 for name, g in size["generators"].items()]
        parts.append(_markdown(["training set as", "MiB", f"reduction vs {basis} (%)"], rows))
    if time:
        rows = [["real data (reference)", "—", f"{time['reference_seconds']:.3g}", "—"]]
        rows += [[name, key, f"{t['seconds']:.3g}", f"{t['reduction_pct']:.1f}"]
                 for name, per_key in time["sources"].items() for key, t in per_key.items()]
        parts.append(_markdown(["downstream trained on", "condition", "seconds to checkpoint", "reduction (%)"], rows))
    return "\n\n".join(parts)


def render_markdown(report: Mapping) -> str:
    """Every table of the report, as markdown sections."""
    sections = [("UAR", results_table(report)), ("Pairwise McNemar", comparisons_table(report)),
                ("Speaker-ID probe", privacy_table(report)), ("Cost", cost_table(report))]
    return "\n\n".join(f"## {title}\n\n{body}" for title, body in sections if body) + "\n"
