"""Search-space files (`search_spaces/*.yaml`): a typed, validated description of one sweep.

A space names the objective, how many trials run and how many at once, what each trial may use,
the distillation config every trial starts from, the evaluation budgets, the leave-one-session-out folds
its trials run on, and how trials differ: a grid (optionally over named variants) or a sampled space
(random or Optuna TPE, with optional conditions and ASHA early stopping). Trial configs are flat dicts of
dotted DistillConfig overrides (and, with several folds, the trial's `fold`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from emodistill.distill.config import DistillConfig, load_config, read_settings
from emodistill.distilled import SetSpec
from emodistill.downstream import DEFAULT_DECODER, DownstreamConfig
from emodistill.downstream.model import DecoderName
from emodistill.errors import ConfigError
from emodistill.evaluate.protocol import EvalConfig, split_decoder
from emodistill.features.store import default_fold
from emodistill.files import validate
from emodistill.strict import CONFIG, Int, NonNegativeInt, PositiveInt, Seed
from emodistill.yamlfile import read_yaml

VARIANT_KEY = "variant"
FOLD_KEY = "fold"  # a trial's fold, in its Tune config when the space lists several
BUDGET_METRIC = re.compile(r"dev_uar_ppc([0-9]+)")  # fullmatch: "$" would let a trailing newline through
TEST_METRIC = re.compile(r"^uar_ppc(\d+)")
MAX_TRIALS = 100_000  # far beyond any sweep; a typo of 10**12 is refused instead of queued


class _Strict(BaseModel):
    model_config = CONFIG


class Objective(_Strict):
    """The metric the sweep optimises: a dev score (choices never read the test split), reported by every trial
    at every evaluation; it also picks each trial's checkpoint, the searcher's next trials and the champion.
    `dev_uar_ppc<N>` is the linear head's; `dev_uar_ppc<N>_<decoder>` that of another of `evaluation.decoders`."""

    metric: str = "dev_uar_ppc100"
    mode: Literal["max"] = "max"  # every objective is a UAR


class Resources(_Strict):
    """What one trial reserves on a node; fractional GPUs let several trials share one device."""

    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)

    def as_tune(self) -> dict[str, float]:
        """The resource dict `tune.with_resources` takes."""
        return {"cpu": self.cpu, "gpu": self.gpu}


class BaseConfig(_Strict):
    """The distillation config every trial starts from: a preset (or config file) plus dotted overrides."""

    preset: str = "small"
    overrides: dict[str, Any] = Field(default_factory=dict)
    # Read where the space is loaded (the sweep's driver) and kept in the space: trials on other nodes and a
    # resumed sweep never open a config file that only the driver's machine has.
    settings: dict[str, Any] | None = Field(default=None, description="the preset's settings (filled on load)")

    @model_validator(mode="after")
    def _read_preset(self) -> BaseConfig:
        if self.settings is None:
            self.settings = read_settings(self.preset)
        return self


class Evaluation(_Strict):
    """The protocol run every `train.eval_every` steps: budgets (samples per class), scenarios, downstream recipe."""

    budgets: list[PositiveInt] = Field(min_length=1)
    arch_budgets: dict[str, list[PositiveInt]] = Field(
        default_factory=dict, description="extra budgets for one architecture (the paper's 800/1800 for gan_att)")
    imbalanced: bool = Field(default=False, description="also score uar_ppc{N}_imbalanced (real class prior)")
    repeats: Int = Field(default=1, ge=1, description="downstreams trained per budget and evaluation")
    seed: Seed = 0
    downstream: dict[str, Any] = Field(default_factory=dict, description="DownstreamConfig overrides")
    decoders: list[DecoderName] = Field(
        default_factory=lambda: [DEFAULT_DECODER],
        description="downstream heads trained on every draw; metrics of a decoder other than linear end in its name "
                    "(uar_ppc100_attentive); linear is always among them")
    select: SetSpec = Field(default_factory=SetSpec, description="how a trial's set of each budget is drawn from its "
                                                                 "generator: iid, or a distilled set (herding, ...)")

    def budgets_for(self, arch: str) -> list[int]:
        """Budgets evaluated for a trial of architecture `arch`, ascending."""
        return sorted(set(self.budgets) | set(self.arch_budgets.get(arch, [])))

    def eval_config(self, arch: str) -> EvalConfig:
        """The evaluation protocol's config for a trial of architecture `arch`."""
        return EvalConfig(budgets=self.budgets_for(arch), imbalanced=self.imbalanced, repeats=self.repeats,
                          seed=self.seed, downstream=DownstreamConfig(**self.downstream), decoders=self.decoders,
                          select=self.select)

    @model_validator(mode="after")
    def _downstream_is_valid(self) -> Evaluation:
        DownstreamConfig(**self.downstream)
        self.decoders = EvalConfig(decoders=[DEFAULT_DECODER, *self.decoders]).decoders
        return self


class _Range(_Strict):
    """A number drawn from [low, high] (log-uniformly when `log` is set)."""

    @model_validator(mode="after")
    def _low_to_high(self) -> _Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        return self


class FloatParam(_Range):
    """A float drawn uniformly, or log-uniformly when `log` is set."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    when: dict[str, Any] = Field(default_factory=dict, description="sample only if these params have these values")


class IntParam(_Range):
    """An integer in [low, high]."""

    type: Literal["int"]
    low: Int
    high: Int
    log: bool = False
    when: dict[str, Any] = Field(default_factory=dict)


class CategoricalParam(_Strict):
    """One of a list of values."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)
    when: dict[str, Any] = Field(default_factory=dict)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Asha(_Strict):
    """ASHA early stopping, counted in evaluation rounds (one per `train.eval_every` steps)."""

    type: Literal["asha"] = "asha"
    grace_period: Int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=2.0, gt=1)


class GridSearch(_Strict):
    """Every combination of `grid` values (and of `variants`, each a named set of overrides)."""

    type: Literal["grid"]
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> GridSearch:
        if not self.grid and not self.variants:
            raise ValueError("a grid search needs 'grid' or 'variants'")
        return self


class SampledSearch(_Strict):
    """Trials sampled from `params`: random search, or Optuna TPE (define-by-run, so `when` works)."""

    type: Literal["random", "optuna"]
    seed: Seed = 0
    params: dict[str, Param] = Field(min_length=1)
    scheduler: Asha | None = None

    @model_validator(mode="after")
    def _conditions_refer_back(self) -> SampledSearch:
        seen: set[str] = set()
        for name, param in self.params.items():
            unknown = sorted(set(param.when) - seen)
            if unknown:
                raise ValueError(f"params.{name}.when refers to {unknown}, which must be params listed before it")
            seen.add(name)
        return self


class SearchSpace(_Strict):
    """One sweep: objective, trial count, concurrency, resources, base config, budgets, search."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    objective: Objective = Field(default_factory=Objective)
    trials: Int = Field(default=1, ge=1, le=MAX_TRIALS,
                        description="samples for a sampled search; grid repeats otherwise")
    max_concurrent_trials: Int = Field(default=1, ge=1)
    max_failures: Int = Field(default=1, ge=0, description="restarts of a crashed trial from its checkpoint")
    reuse_actors: bool = Field(default=True, description="run later trials in finished trials' worker processes "
                                                         "(spares seconds of imports; false places each trial afresh)")
    resources: Resources = Field(default_factory=Resources)
    base: BaseConfig = Field(default_factory=BaseConfig)
    evaluation: Evaluation
    search: Annotated[GridSearch | SampledSearch, Field(discriminator="type")]
    folds: list[NonNegativeInt] | None = Field(
        default=None, min_length=1, description="leave-one-session-out folds (fold K tests on session K); every "
                                                "setting runs on each; default: fold 1, or the features' fixed splits")

    @model_validator(mode="after")
    def _folds_are_distinct(self) -> SearchSpace:
        folds = self.folds or []
        if len(set(folds)) != len(folds):
            raise ValueError(f"folds lists a fold twice: {folds}")
        if len(folds) > 1 and not isinstance(self.search, GridSearch):
            # A searcher proposes one config per trial; running each proposal on every fold would need trials
            # grouped per proposal, which Tune's searchers and ASHA do not know.
            raise ValueError(f"folds: a {self.search.type} search runs on one fold (got {folds}); list one, or "
                             "use a grid search to run every setting on several folds")
        return self

    @model_validator(mode="after")
    def _no_reserved_keys(self) -> SearchSpace:
        # A trial's Tune config carries its fold and variant under these names: a swept key of the same name
        # would be taken for them (trials on folds nobody prepared a pool or reference for).
        reserved = sorted(self.varied_keys() & {FOLD_KEY, VARIANT_KEY})
        if reserved:
            raise ValueError(f"search: {reserved[0]!r} is not a config key; list folds under 'folds:' and name "
                             "settings under 'variants:'")
        return self

    def check_folds(self, sessions: list[int] | None, features: str) -> list[int | None]:
        """The folds the sweep runs on the features whose sessions are `sessions` (None: fixed splits, which run
        as they are); raise ConfigError naming `folds` when a fold has no session there."""
        if sessions is None:
            if self.folds is not None:
                raise ConfigError(f"search space {self.name}: folds {self.folds} need features extracted with "
                                  f"sessions, but {features} has splits fixed when it was extracted")
            return [None]
        if self.folds is None:
            return [default_fold(sessions)]
        missing = [fold for fold in self.folds if fold not in sessions]
        if missing:
            raise ConfigError(f"search space {self.name}: folds {missing} are not sessions of {features} "
                              f"(fold K tests on session K; sessions: {sessions})")
        return list(self.folds)

    @model_validator(mode="after")
    def _objective_is_evaluated(self) -> SearchSpace:
        metric = self.objective.metric
        if TEST_METRIC.match(metric):
            raise ValueError(f"objective.metric {metric!r} is a score on the test split, which no choice may "
                             f"read: use its dev twin 'dev_{metric}'")
        condition, decoder = split_decoder(metric)
        match = BUDGET_METRIC.fullmatch(condition)
        if not match:
            raise ValueError(f"objective.metric must be dev_uar_ppc<N> or dev_uar_ppc<N>_<decoder>, got {metric!r}")
        if int(match.group(1)) not in self.evaluation.budgets:
            raise ValueError(f"objective.metric {metric!r} needs budget {match.group(1)} "
                             f"in evaluation.budgets {self.evaluation.budgets}")
        if decoder not in self.evaluation.decoders:
            raise ValueError(f"objective.metric {metric!r} is scored by the {decoder} decoder: add it to "
                             f"evaluation.decoders {self.evaluation.decoders}")
        if any(k.startswith("pool.") for k in self.varied_keys()):
            raise ValueError("the search may not vary 'pool.*': the checkpoint pool is trained once per sweep")
        if any(k.startswith("data.") for k in self.varied_keys()):
            raise ValueError("the search may not vary 'data.*': every trial, the pool and the reference see the same "
                             "splits; set it under base.overrides")
        return self

    @model_validator(mode="after")
    def _every_trial_config_validates(self) -> SearchSpace:
        # Found here, a typo in a variant fails the sweep before Ray starts, not inside every trial a minute later.
        try:
            self.check_trials()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def check_trials(self, dim: int | None = None, n_classes: int | None = None) -> None:
        """Raise ConfigError naming the first grid point or sampled value whose DistillConfig is invalid; given the
        features' `dim` and `n_classes`, also the first whose model does not fit them."""
        for where, trial in self._trials_to_check():
            try:
                config = trial_config(self, trial_overrides(self, trial))
                if dim is not None:
                    config.model_for(dim, n_classes)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None

    def _trials_to_check(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(where in the file, Tune trial config) for every grid point, or the base and each sampled param's
        choices or bounds (with the values its conditions name): each must make a valid DistillConfig."""
        search = self.search
        if isinstance(search, GridSearch):
            axes = [[(f"search.grid.{key}={value!r}", {key: value}) for value in values]
                    for key, values in search.grid.items()]
            if search.variants:
                axes.append([(f"search.variants.{name}", {VARIANT_KEY: name}) for name in search.variants])
            for point in itertools.product(*axes):
                yield ", ".join(where for where, _ in point), {k: v for _, trial in point for k, v in trial.items()}
            return
        yield "base", {}
        for name, param in search.params.items():
            values = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
            for value in values:
                yield f"search.params.{name}={value!r}", {**param.when, name: value}

    def varied_keys(self) -> set[str]:
        """Dotted config keys that differ between trials."""
        if isinstance(self.search, GridSearch):
            keys = set(self.search.grid)
            for overrides in self.search.variants.values():
                keys |= set(overrides)
            return keys
        return set(self.search.params)


def trial_overrides(space: SearchSpace, trial_config: dict) -> dict:
    """The dotted DistillConfig overrides of one trial: base overrides, its variant, its sampled values."""
    overrides = dict(space.base.overrides)
    trial_config = dict(trial_config)
    trial_config.pop(FOLD_KEY, None)  # which data the trial sees, not how it trains
    variant = trial_config.pop(VARIANT_KEY, None)
    if variant is not None:
        overrides.update(space.search.variants[variant])
    overrides.update(trial_config)
    return overrides


def trial_config(space: SearchSpace, overrides: dict) -> DistillConfig:
    """The trial's DistillConfig; every trial evaluates (and reports) every train.eval_every steps."""
    config = load_config(space.base.preset, [f"{k}={json.dumps(v)}" for k, v in overrides.items()],
                         settings=space.base.settings)
    train = config.train
    if not 0 < train.eval_every <= train.steps:
        raise ConfigError(f"search space {space.name}: train.eval_every must be in 1..train.steps ({train.steps}) "
                          f"so every trial reports its metrics, got {train.eval_every}")
    # Each report carries a checkpoint: the trainer's own checkpointing is the report's.
    return config.model_copy(update={"train": train.model_copy(update={"checkpoint_every": train.eval_every})})


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file; errors name the file and the bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search-space file not found")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate(data, SearchSpace, str(path))
