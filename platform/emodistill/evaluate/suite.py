"""The whole evaluation in one call: reference, baselines, generators, privacy probe and cost -> a report."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from emodistill.downstream import Downstream
from emodistill.evaluate.baselines import evaluate_baselines, gaussian_frames
from emodistill.evaluate.cost import size_report, time_report
from emodistill.evaluate.privacy import privacy_probe
from emodistill.evaluate.protocol import (EvalConfig, EvalResult, ReferenceResult, balanced_budgets, conditions,
                                          evaluate_generator, train_reference)
from emodistill.evaluate.report import assemble
from emodistill.features.dataset import FeatureSet
from emodistill.generator import TrainedGenerator
from emodistill.generator.sampling import check_sample_memory

log = logging.getLogger(__name__)


def probe_models(reference: ReferenceResult, results: list[EvalResult]) -> dict[str, Downstream]:
    """The downstreams the privacy probe reads: the reference, and each source's at its largest balanced budget."""
    models = {"real data": reference.model}
    for result in results:
        budgets = balanced_budgets(result.conditions)
        if budgets:
            models[result.name] = result.conditions[budgets[-1][1]].model
    return models


def check_budgets_fit(train: FeatureSet, config: EvalConfig, generators: Mapping[str, TrainedGenerator],
                      baselines: bool) -> None:
    """Refuse, before anything is trained, a budget whose synthetic training set cannot be held in memory."""
    largest = max(condition.counts.sum() for condition in conditions(config, train))
    what = f"budget {max(config.budgets, default=0)} per class"
    for name, generator in generators.items():
        generator.check_memory(int(largest), f"{name}: {what}")
    if baselines:
        check_sample_memory(int(largest), gaussian_frames(train, config.gaussian_frames), train.dim,
                            f"the Gaussian baseline: {what}")


def evaluate_all(splits: Mapping[str, FeatureSet], config: EvalConfig,
                 generators: Mapping[str, TrainedGenerator] | None = None, *, baselines: bool = True,
                 feature_bytes: int | None = None, audio_bytes: int | None = None,
                 generator_bytes: Mapping[str, int] | None = None, features: str | None = None,
                 data: Mapping | None = None, progress: bool = True) -> dict:
    """Train the references (one per decoder), score the baselines and every named generator, probe speakers, add
    the cost report; `data` is the data protocol the splits were made with, recorded in the report."""
    generators = dict(generators or {})
    check_budgets_fit(splits["train"], config, generators, baselines)
    reference = train_reference(splits, config.downstream, config.seed, progress, config.decoders)
    real = evaluate_baselines(splits, config, reference, progress) if baselines else []
    suffix = "" if config.select.method == "iid" else f" ({config.select.label()})"
    synthetic = [evaluate_generator(g, splits, config, reference, name + suffix, progress)
                 for name, g in generators.items()]
    privacy = privacy_probe(probe_models(reference, real + synthetic), splits["train"], seed=config.seed,
                            device=config.downstream.device)
    seconds = {r.name: {k: float(np.mean(c.train_seconds)) for k, c in r.conditions.items()}
               for r in real + synthetic}
    cost = {"time": time_report(reference.train_seconds, seconds)}
    if feature_bytes is not None:
        sizes = generator_bytes or {name: g.size_bytes for name, g in generators.items()}
        cost["size"] = size_report(feature_bytes, sizes, audio_bytes)
    return assemble(config, reference, real, synthetic, privacy, cost, features, data)
