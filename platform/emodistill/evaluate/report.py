"""The evaluation report: one JSON document (results.json) and its markdown tables (figures: figures.py).

The UAR table reads like the paper's Tables 2-3: a row per training-set source (the real reference,
the real-data baselines, each generator), a column per condition, mean ± std over repeats in %, the ratio to
the real training split, and † where McNemar's test (repeat 0's model vs the reference) is significant; one
table per decoder, each against that decoder's own reference. Beside it, each source's improvement over the
random real subset of the same budget (UAR points, mean and 95 % CI of the paired difference over the repeats,
which share their seeds) and the accuracy (SUPERB's metric).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from emodistill.evaluate.baselines import RANDOM
from emodistill.evaluate.privacy import ProbeResult
from emodistill.evaluate.protocol import EvalConfig, compare_predictions, split_decoder
from emodistill.evaluate.results import EvalResult, ReferenceResult
from emodistill.evaluate.stats import mean_ci
from emodistill.files import atomic_path, read_json

FORMAT = "emodistill-evaluation"
FORMAT_VERSION = 1
REFERENCE_COLUMN = "whole train set"


class _Read(BaseModel):
    # Strict on the fields the tables read; every other key assemble writes is kept as it is.
    model_config = ConfigDict(strict=True, extra="allow")


class _Improvement(_Read):
    points: float
    low: float
    high: float


class _Condition(_Read):
    mean: float
    std: float
    uars: list[float]
    mcnemar_p: float | None = None
    ratio: float | None = None
    vs_random: _Improvement | None = None
    accs: list[float] = []
    decoder: str = "linear"


class _Source(_Read):
    name: str
    kind: str
    conditions: dict[str, _Condition]


class _Reference(_Read):
    uar_real_full: float
    acc_real_full: float | None = None
    decoder: str = "linear"
    decoders: dict[str, _Reference] = {}


class _Comparison(_Read):
    a: str
    b: str
    condition: str
    a_right_b_wrong: int
    a_wrong_b_right: int
    pvalue: float
    significant: bool


class _Probe(_Read):
    accuracy: float
    chance: float
    speakers: int


class _Downstream(_Read):
    augment_noise: float | None = None


class _Config(_Read):
    significance: float
    confidence: float
    repeats: int
    soft_labels: bool = False
    downstream: _Downstream


class ResultsFile(_Read):
    """results.json as assemble writes it."""

    format: str
    format_version: int
    config: _Config
    data: dict[str, str] = {}  # the data protocol (dev_by, normalize); empty in a report of SUPERB's protocol
    conditions: list[str]
    reference: _Reference
    sources: list[_Source]
    comparisons: list[_Comparison] = []
    privacy: dict[str, _Probe] = {}
    cost: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _format(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("format") != FORMAT:
            raise ValueError(f"not an emodistill evaluation report (expected format {FORMAT!r})")
        return data

    @field_validator("data")
    @classmethod
    def _protocol(cls, data: dict[str, str]) -> dict[str, str]:
        missing = [key for key in ("dev_by", "normalize") if data and key not in data]
        if missing:
            raise ValueError(f"lacks {missing}")
        return data


def assemble(config: EvalConfig, reference: ReferenceResult, baselines: Sequence[EvalResult] = (),
             generators: Sequence[EvalResult] = (), privacy: Mapping[str, ProbeResult] | None = None,
             cost: Mapping | None = None, features: str | None = None, data: Mapping | None = None) -> dict:
    """The report document: config, data protocol, reference, every source's results, metrics, ratio to the
    reference and improvement over random, pairwise tests, probe, cost."""
    sources = [{"kind": kind, **result.to_dict(), "metrics": result.metrics}
               for kind, results in (("baseline", baselines), ("generator", generators)) for result in results]
    random = next((s for s in sources if s["kind"] == "baseline" and s["name"] == RANDOM), None)
    for source in sources:
        for key, condition in source["conditions"].items():
            versus = reference.for_decoder(condition["decoder"])
            condition["ratio"] = condition["mean"] / versus.uar_real_full if versus and versus.uar_real_full else None
            condition["vs_random"] = improvement(condition, random["conditions"].get(key) if random else None,
                                                 config.confidence)
    keys = sorted({k for s in sources for k in s["conditions"]}, key=condition_order)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "features": features, "data": dict(data or {}),
        "config": config.model_dump(mode="json"), "label_names": list(reference.label_names),
        "conditions": keys, "reference": reference.to_dict(), "sources": sources,
        "comparisons": pairwise_comparisons(generators, config.significance),
        "privacy": {name: probe.to_dict() for name, probe in (privacy or {}).items()},
        "cost": dict(cost or {}),
    }


def improvement(condition: Mapping, random: Mapping | None, confidence: float) -> dict | None:
    """UAR points above the random subset of the same condition: mean and CI of the paired differences over the
    repeats (repeat r of both used the same seed); None without a random subset there, or for random itself."""
    if random is None or random is condition or len(random["uars"]) != len(condition["uars"]):
        return None
    differences = 100 * (np.asarray(condition["uars"]) - np.asarray(random["uars"]))
    summary = mean_ci(differences, confidence)
    return {"points": summary.mean, "low": summary.low, "high": summary.high}


def condition_order(key: str) -> tuple[int, bool, int, bool]:
    """Sort key of result keys: by decoder (in the order they are named), then budgets ascending (balanced first),
    then the full-data size."""
    from emodistill.downstream import DECODERS

    condition, decoder = split_decoder(key)
    full = condition.startswith("full")
    budget = 0 if full else int(condition[3:].removesuffix("_imbalanced"))
    return list(DECODERS).index(decoder), full, budget, condition.endswith("_imbalanced")


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
    """A report written by write_results, checked for its format and the types of the fields the tables read."""
    return read_json(path, ResultsFile, missing="results file not found").model_dump()


def _cell(condition: Mapping | None, significance: float) -> str:
    if condition is None:
        return "—"
    mark = "†" if condition["mcnemar_p"] is not None and condition["mcnemar_p"] < significance else ""
    ratio = f" ({condition['ratio']:.2f}×)" if condition.get("ratio") else ""
    return f"{100 * condition['mean']:.2f} ± {100 * condition['std']:.2f}{mark}{ratio}"


def _improvement_cell(condition: Mapping | None) -> str:
    versus = None if condition is None else condition.get("vs_random")
    if versus is None:
        return "—"
    return f"{versus['points']:+.2f} [{versus['low']:+.2f}, {versus['high']:+.2f}]"


def _accuracy_cell(condition: Mapping | None) -> str:
    if condition is None or not condition.get("accs"):
        return "—"
    return f"{100 * float(np.mean(condition['accs'])):.2f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def decoders_of(report: Mapping) -> list[str]:
    """The decoders the report's conditions were scored with, in condition order."""
    return list(dict.fromkeys(split_decoder(key)[1] for key in report["conditions"]))


def _reference_of(report: Mapping, decoder: str) -> Mapping | None:
    reference = report["reference"]
    return reference if reference.get("decoder", "linear") == decoder else reference.get("decoders", {}).get(decoder)


def _decoder_table(report: Mapping, decoder: str, cell, reference_cell) -> str:
    """One table of `decoder`'s conditions: a row per source (the reference first), a column per condition."""
    keys = [key for key in report["conditions"] if split_decoder(key)[1] == decoder]
    reference = _reference_of(report, decoder)
    rows = [["real data (reference)", reference_cell(reference)] + ["—"] * len(keys)]
    rows += [[f"{s['name']} ({s['kind']})", "—"] + [cell(s["conditions"].get(k)) for k in keys]
             for s in report["sources"]]
    return _markdown(["source", REFERENCE_COLUMN, *[split_decoder(k)[0] for k in keys]], rows)


def _tables(report: Mapping, title: str, cell, reference_cell, legend: str) -> list[tuple[str, str]]:
    """(section title, table + legend) per decoder of the report."""
    return [(f"{title}, {decoder} decoder", _decoder_table(report, decoder, cell, reference_cell) + "\n\n" + legend)
            for decoder in decoders_of(report)]


def _reference_uar(reference: Mapping | None) -> str:
    return "—" if reference is None else f"{100 * reference['uar_real_full']:.2f}"


def _reference_accuracy(reference: Mapping | None) -> str:
    accuracy = None if reference is None else reference.get("acc_real_full")
    return "—" if accuracy is None else f"{100 * accuracy:.2f}"


def _uar_legend(report: Mapping) -> str:
    significance, repeats = report["config"]["significance"], report["config"]["repeats"]
    return (f"UAR (%) on the real test split, mean ± std over {repeats} repeat(s), (×) the ratio to the reference. "
            f"† McNemar (two-sided, repeat 0's model) differs from the reference at p < {significance}.")


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
    """Every table of the report, as markdown sections: per decoder UAR, improvement over random and accuracy."""
    confidence = round(100 * report["config"]["confidence"])
    sections = _tables(report, "UAR", lambda c: _cell(c, report["config"]["significance"]), _reference_uar,
                       _uar_legend(report))
    sections += _tables(report, "Improvement over the random subset", _improvement_cell, lambda _: "—",
                        f"UAR points above the random real subset of the same budget: mean [{confidence} % CI] of "
                        "the paired differences over the repeats.")
    sections += _tables(report, "Accuracy", _accuracy_cell, _reference_accuracy,
                        "Accuracy (%, SUPERB's metric) on the real test split, mean over the repeats.")
    sections += [("Pairwise McNemar", comparisons_table(report)), ("Speaker-ID probe", privacy_table(report)),
                 ("Cost", cost_table(report))]
    setup = []
    if report.get("data"):
        setup.append(f"dev split by {report['data']['dev_by']}; features normalised: {report['data']['normalize']}.")
    config = report["config"]
    regime = [what for what, on in (("the real-data reference's soft labels", config.get("soft_labels")),
                                    (f"Gaussian feature noise (σ {config['downstream'].get('augment_noise')})",
                                     config["downstream"].get("augment_noise"))) if on]
    if regime:
        setup.append(f"Every source's sets, real subsets included, are learnt with {' and '.join(regime)}: not "
                     "comparable with hard-label results.")
    if setup:
        sections.insert(0, ("Data and regime", " ".join(setup)))
    return "\n\n".join(f"## {title}\n\n{body}" for title, body in sections if body) + "\n"
