"""The paper's evaluation protocol (Sec. 5.2): train the downstream on a training set drawn at each budget,
select its checkpoint on the REAL dev split, score UAR on the REAL test split, repeat with derived seeds.

A budget is a *condition* named like its metric suffix: `ppc{N}` (N per class), `ppc{N}_imbalanced`
(the real training split's class prior at the same total), `full` / `full_imbalanced` (as many
utterances as the real training split). Every decoder of the config is trained on the same draws; a result's
key is its condition's, followed by `_{decoder}` for decoders other than `linear` (`ppc100_attentive`). The
same loop scores generators and real-data baselines: each is a `draw(counts, seed) -> FeatureSet` function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, field_validator
from tqdm.auto import tqdm

from emodistill.downstream import (DECODERS, DEFAULT_DECODER, DownstreamConfig, accuracy, confusion_matrix, predict,
                                   teacher_probabilities, train_downstream, uar)
from emodistill.downstream.model import DecoderName
from emodistill.errors import ConfigError, FeatureTableError
from emodistill.distilled import SetSpec, distilled_set
from emodistill.evaluate.results import ConditionResult, EvalResult, ReferenceResult
from emodistill.evaluate.stats import McNemarResult, mcnemar, mean_ci
from emodistill.features.dataset import FeatureSet
from emodistill.distill import Evaluate
from emodistill.generator import TrainedGenerator, class_counts
from emodistill.strict import CONFIG, PositiveInt, Seed

log = logging.getLogger(__name__)

Draw = Callable[[np.ndarray, int], FeatureSet]  # (utterances per class, seed) -> a training set


class InfeasibleBudget(ConfigError):
    """A draw cannot supply the requested counts (a real subset larger than the real class)."""


class EvalConfig(BaseModel):
    """Budgets (utterances per class), the sampling scenarios, repeats and the downstream recipe."""

    model_config = CONFIG

    # Where distillation differs from selection (1-10 per class) up to the paper's smaller budgets; its 800 and
    # 1800 per class are --budgets away.
    budgets: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 5, 10, 20, 50, 100])
    imbalanced: bool = False  # also draw each budget's total with the real training prior
    full_data: bool = False  # also evaluate at the real training split's size
    minority_budget: bool = False  # also evaluate at ppc = the real minority class's count (paper Table 3)
    repeats: PositiveInt = Field(default=3, le=1000)  # each keeps its predictions: bounded, far above what a CI needs
    # Frames per utterance of the Gaussian baseline's samples; None: the real training split's median length.
    gaussian_frames: PositiveInt | None = None
    seed: Seed = 0
    confidence: float = Field(default=0.95, gt=0, lt=1)
    significance: float = Field(default=0.05, gt=0, lt=1)
    downstream: DownstreamConfig = Field(default_factory=DownstreamConfig)
    # Downstream heads trained on every draw (downstream/model.py); `linear` is always among them: it is the
    # pool's head and its reference model embeds the utterances that the selection baselines choose from.
    decoders: list[DecoderName] = Field(default_factory=lambda: [DEFAULT_DECODER])
    # How a generator's training set of each budget is drawn: i.i.d. samples (the paper's), or a distilled set
    # chosen for the budget (distilled/sets.py) in the embedding of the linear reference; the Gaussian baseline is
    # then scored both ways.
    select: SetSpec = Field(default_factory=SetSpec)
    # Beyond the paper (off in it): every training set of every source, real subsets included, is learnt with the
    # soft labels of the linear reference (its softmax on each utterance) instead of its hard labels.
    soft_labels: bool = False

    @field_validator("budgets")
    @classmethod
    def _sorted_unique(cls, budgets: list[int]) -> list[int]:
        return sorted(set(budgets))

    @field_validator("decoders")
    @classmethod
    def _linear_first(cls, decoders: list[str]) -> list[str]:
        if DEFAULT_DECODER not in decoders:
            raise ValueError(f"must include {DEFAULT_DECODER!r} (the L_SML pool's head, whose reference embeds the "
                             f"utterances the selection baselines choose); got {decoders}")
        return [DEFAULT_DECODER] + [d for d in dict.fromkeys(decoders) if d != DEFAULT_DECODER]


@dataclass(frozen=True)
class Condition:
    """One training-set budget: its name (the metric suffix) and the utterances to draw per class."""

    key: str
    counts: np.ndarray  # per class, in label order


def check_splits(splits: Mapping[str, FeatureSet]) -> None:
    """The protocol needs train (budgets, prior), dev (checkpoint selection) and test (scores) with one label set."""
    missing = [s for s in ("train", "dev", "test") if s not in splits]
    if missing:
        raise FeatureTableError(f"evaluation needs the splits train, dev and test; missing {missing}")
    labels = {s: splits[s].label_names for s in ("train", "dev", "test")}
    if len(set(labels.values())) != 1:
        raise FeatureTableError(f"splits disagree on the label set: {labels}")


def conditions(config: EvalConfig, train: FeatureSet) -> list[Condition]:
    """The conditions of `config`, with counts derived from the real training split's size and class prior."""
    labels, prior = train.label_names, train.class_counts().astype(np.float64)
    budgets = list(config.budgets)
    if config.minority_budget:
        budgets = sorted(set(budgets) | {int(prior.min())})
    if not budgets and not config.full_data:
        raise ConfigError("EvalConfig: no budgets and full_data is off; nothing to evaluate")
    out = []
    for n in budgets:
        out.append(Condition(f"ppc{n}", class_counts(n, labels, prior, balanced=True)))
        if config.imbalanced:
            out.append(Condition(f"ppc{n}_imbalanced", class_counts(n, labels, prior, balanced=False)))
    if config.full_data:
        out.append(Condition("full", class_counts(0, labels, prior, balanced=True, total=len(train))))
        if config.imbalanced:
            out.append(Condition("full_imbalanced", class_counts(0, labels, prior, balanced=False, total=len(train))))
    return out


def decoder_key(key: str, decoder: str) -> str:
    """The result key of condition `key` scored with `decoder`: the condition's own for `linear`."""
    return key if decoder == DEFAULT_DECODER else f"{key}_{decoder}"


def split_decoder(key: str) -> tuple[str, str]:
    """(condition key, decoder) of a result key (inverse of decoder_key)."""
    for decoder in DECODERS:
        if decoder != DEFAULT_DECODER and key.endswith(f"_{decoder}"):
            return key.removesuffix(f"_{decoder}"), decoder
    return key, DEFAULT_DECODER


def objective_keys(metrics, objective: str | None) -> dict[int, str]:
    """Budget N -> condition key of `ppcN` under the head that scores `objective` (linear for None), for every
    balanced test score `uar_ppcN` in `metrics`, ascending."""
    decoder = split_decoder(objective or "")[1]
    tested = balanced_budgets(key.removeprefix("uar_") for key in metrics if key.startswith("uar_"))
    return {n: decoder_key(f"ppc{n}", decoder) for n, _ in tested}


def balanced_budgets(keys, decoder: str = DEFAULT_DECODER) -> list[tuple[int, str]]:
    """(N, key) of the balanced per-class conditions `ppc{N}` scored with `decoder` among `keys`, ascending."""
    out = []
    for key in keys:
        condition, scored_with = split_decoder(key)
        if scored_with == decoder and condition.startswith("ppc") and condition[3:].isdigit():
            out.append((int(condition[3:]), key))
    return sorted(out)


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed of repeat `repeat` (sampling and downstream initialisation), independent across repeats."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def evaluate_source(name: str, draw: Draw, splits: Mapping[str, FeatureSet], config: EvalConfig,
                    reference: ReferenceResult | None = None, progress: bool = True,
                    skip_infeasible: bool = False) -> EvalResult:
    """Run every condition x repeat x decoder of `config` on training sets from `draw`; McNemar vs `reference` (each
    decoder against its own) if given.

    With skip_infeasible, a condition whose draw raises InfeasibleBudget (more real utterances than a class
    holds) is logged and left out of the result instead of failing the whole evaluation.
    """
    check_splits(splits)
    test = splits["test"]
    if reference is not None and not np.array_equal(reference.y_true, test.labels):
        raise ConfigError(f"{name}: the reference was scored on a different test split")
    result = EvalResult(name, test.label_names, test.labels.copy())
    todo = conditions(config, splits["train"])
    with tqdm(total=len(todo) * config.repeats, desc=f"evaluate {name}", disable=not progress) as bar:
        for condition in todo:
            try:
                scored = _score_condition(condition, draw, splits, config, bar, _teacher(config, reference))
            except InfeasibleBudget as exc:
                if not skip_infeasible:
                    raise
                log.warning("%s: %s skipped: %s", name, condition.key, exc)
                bar.update(config.repeats)
                continue
            for decoder, one in scored.items():
                versus = reference.for_decoder(decoder) if reference is not None else None
                if versus is not None:
                    one.mcnemar_p = mcnemar(test.labels, versus.predictions, one.predictions).pvalue
                result.conditions[one.key] = one
                log.info("%s %s: UAR %.4f ± %.4f over %d repeats", name, one.key, one.mean, one.std, config.repeats)
    return result


def _teacher(config: EvalConfig, reference: ReferenceResult | None):
    """The model whose softmax the training sets are learnt from with config.soft_labels (None without)."""
    if not config.soft_labels:
        return None
    if reference is None or reference.model is None:
        raise ConfigError("soft_labels: the soft labels are the real-data reference's; evaluate with a reference "
                          "trained in this process")
    return reference.model


def _score_condition(condition: Condition, draw: Draw, splits: Mapping[str, FeatureSet], config: EvalConfig,
                     bar: tqdm, teacher=None) -> dict[str, ConditionResult]:
    """Decoder -> the results of `config.repeats` fresh draws of one condition, each draw training every decoder
    (on `teacher`'s soft labels when given)."""
    test = splits["test"]
    scores = {decoder: {"uars": [], "accs": [], "dev": [], "seconds": [], "first": None} for decoder in config.decoders}
    for r in range(config.repeats):
        seed = repeat_seed(config.seed, r)
        train = draw(condition.counts, seed)
        targets = None if teacher is None else teacher_probabilities([teacher], train, device=config.downstream.device)
        for decoder, score in scores.items():
            downstream = config.downstream.model_copy(update={"seed": seed, "decoder": decoder})
            trained = train_downstream(train, splits["dev"], downstream, progress=False, targets=targets)
            pred = predict(trained.model, test, device=config.downstream.device)
            score["uars"].append(uar(test.labels, pred))
            score["accs"].append(accuracy(test.labels, pred))
            score["dev"].append(trained.dev_uar)
            score["seconds"].append(trained.train_seconds)
            if score["first"] is None:
                score["first"] = (pred, trained.model)
        bar.update()
    counts = {name: int(c) for name, c in zip(test.label_names, condition.counts)}
    out = {}
    for decoder, score in scores.items():
        summary, (pred, model) = mean_ci(score["uars"], config.confidence), score["first"]
        out[decoder] = ConditionResult(
            key=decoder_key(condition.key, decoder), counts=counts, uars=score["uars"], train_seconds=score["seconds"],
            mean=summary.mean, std=summary.std, low=summary.low, high=summary.high, predictions=pred,
            confusion=confusion_matrix(test.labels, pred, len(test.label_names)), model=model,
            dev_uars=score["dev"], accs=score["accs"], decoder=decoder)
    return out


def generator_draw(generator: TrainedGenerator, labels: tuple[str, ...]) -> Draw:
    """Draw function sampling `counts` from a generator (its label set must match the splits')."""
    if generator.label_names != tuple(labels):
        raise ConfigError(f"generator labels {generator.label_names} differ from the feature labels {tuple(labels)}")

    def draw(counts: np.ndarray, seed: int) -> FeatureSet:
        return generator.sample_features({name: int(c) for name, c in zip(labels, counts)}, seed=seed)

    return draw


def distilled_draw(generator: TrainedGenerator, train: FeatureSet, spec: SetSpec, embedding) -> Draw:
    """Draw function choosing each budget's distilled set by `spec` (seeded by the draw's seed) against the real
    training split, in the embedding of `embedding` (a downstream trained on it)."""
    if spec.method == "iid":
        return generator_draw(generator, train.label_names)

    def draw(counts: np.ndarray, seed: int) -> FeatureSet:
        wanted = {name: int(c) for name, c in zip(train.label_names, counts)}
        return distilled_set(generator, train, wanted, spec.model_copy(update={"seed": seed}), embedding)

    return draw


def draw_of(generator: TrainedGenerator, splits: Mapping[str, FeatureSet], config: EvalConfig,
            reference: ReferenceResult | None) -> Draw:
    """The generator's draw under `config.select` (a distilled set needs the reference's linear model)."""
    if config.select.method != "iid" and (reference is None or reference.model is None):
        raise ConfigError(f"select method {config.select.method!r} needs the real-data reference's model, to "
                          "match the real training split in its embedding")
    return distilled_draw(generator, splits["train"], config.select, reference.model if reference else None)


# The head that chooses a checkpoint by default. The linear head reads only each sample's mean frame, which the
# `small` preset's mean path fixes, so it scores every checkpoint alike; the mean+std MLP also reads the frames'
# spread and chose checkpoints 13.9 UAR points better on that head, equal on linear (benchmarks/RESULTS.md).
SELECT_DECODER = "mean_std_mlp"


def selection_metric(ppc: int, decoder: str = DEFAULT_DECODER) -> str:
    """The name of dev_selection's score: `dev_uar_ppc{ppc}`, suffixed `_{decoder}` for decoders other than linear."""
    return decoder_key(f"dev_uar_ppc{ppc}", decoder)


def dev_selection(train: FeatureSet, dev: FeatureSet, ppc: int, draws: int, downstream: DownstreamConfig,
                  seed: int = 0) -> Evaluate:
    """An `evaluate` for `distill`'s checkpoint selection that never reads test: `selection_metric(ppc, decoder)`,
    the mean best dev UAR of `draws` downstreams (of `downstream`'s decoder) trained on `ppc` samples per class.

    Every evaluation uses the same draw seeds (common random numbers), so two checkpoints differ by their
    generators, not by the luck of the draw.
    """
    counts = class_counts(ppc, train.label_names, train.class_counts(), balanced=True)

    def evaluate(step: int, generator: TrainedGenerator) -> dict[str, float]:
        draw = generator_draw(generator, train.label_names)
        scores = []
        for d in range(draws):
            seed_d = repeat_seed(seed, d)
            trained = train_downstream(draw(counts, seed_d), dev, downstream.model_copy(update={"seed": seed_d}),
                                       progress=False)
            scores.append(trained.dev_uar)
        return {selection_metric(ppc, downstream.decoder): float(np.mean(scores))}

    return evaluate


def evaluate_generator(generator: TrainedGenerator, splits: Mapping[str, FeatureSet], config: EvalConfig,
                       reference: ReferenceResult | None = None, name: str = "generator",
                       progress: bool = True) -> EvalResult:
    """UAR on the real test split of downstreams trained only on the generator's samples, per condition."""
    check_splits(splits)
    return evaluate_source(name, draw_of(generator, splits, config, reference), splits, config, reference, progress)


def train_reference(splits: Mapping[str, FeatureSet], downstream_config: DownstreamConfig, seed: int = 0,
                    progress: bool = True, decoders: Sequence[str] = (DEFAULT_DECODER,)) -> ReferenceResult:
    """The `linear` downstream trained on the full real training split (dev selects the checkpoint), scored on test;
    with other `decoders`, theirs too (the result's `decoders`)."""
    check_splits(splits)
    linear, *others = [_reference(splits, downstream_config.model_copy(update={"seed": seed, "decoder": decoder}),
                                  progress)
                       for decoder in dict.fromkeys([DEFAULT_DECODER, *decoders])]
    linear.decoders = {other.decoder: other for other in others}
    return linear


def _reference(splits: Mapping[str, FeatureSet], config: DownstreamConfig, progress: bool) -> ReferenceResult:
    """One decoder's reference: trained on the whole real training split, its checkpoint chosen on dev."""
    test = splits["test"]
    trained = train_downstream(splits["train"], splits["dev"], config, progress=progress)
    pred = predict(trained.model, test, device=config.device)
    score = uar(test.labels, pred)
    log.info("reference (%s, real full training split): test UAR %.4f, %.1f s to its checkpoint",
             config.decoder, score, trained.train_seconds)
    return ReferenceResult(uar_real_full=score, label_names=test.label_names, y_true=test.labels.copy(),
                           predictions=pred, confusion=confusion_matrix(test.labels, pred, len(test.label_names)),
                           train_seconds=trained.train_seconds, best_step=trained.best_step, model=trained.model,
                           acc_real_full=accuracy(test.labels, pred), decoder=config.decoder)


def compare_predictions(result_a: EvalResult, result_b: EvalResult,
                        significance: float = 0.05) -> dict[str, tuple[McNemarResult, bool]]:
    """McNemar between two sources' repeat-0 models per shared condition: (test, significant at `significance`)."""
    if not np.array_equal(result_a.y_true, result_b.y_true):
        raise ConfigError(f"{result_a.name} and {result_b.name} were scored on different test splits")
    shared = [k for k in result_a.conditions if k in result_b.conditions]
    out = {}
    for key in shared:
        test = mcnemar(result_a.y_true, result_a.predictions[key], result_b.predictions[key])
        out[key] = (test, test.pvalue < significance)
    return out
