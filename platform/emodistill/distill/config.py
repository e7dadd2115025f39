"""The distillation config: typed sections, loaded from YAML/JSON presets or files plus dotted overrides."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, Field, NonNegativeFloat, PositiveFloat, ValidationError,
                      create_model, field_validator)

from emodistill.downstream import DownstreamConfig
from emodistill.errors import ConfigError, error_message, field_problems, one_line
from emodistill.files import read_bounded
from emodistill.strict import CONFIG, Int, PositiveInt, Seed
from emodistill.yamlfile import MAX_BYTES as MAX_CONFIG_BYTES, parse_yaml, read_yaml
from emodistill.features.splits import DataConfig
from emodistill.models import ModelConfig
from emodistill.runtime import DeviceName

PRESETS_DIR = Path(__file__).parent / "presets"

# The feature table fixes D and the class count; the config sets the rest of ModelConfig.
FROM_TABLE = ("dim", "n_classes")
ModelSection = create_model(
    "ModelSection",
    __config__=CONFIG,
    __doc__="ModelConfig without dim and n_classes, which come from the feature table at train time.",
    **{name: (field.annotation, field) for name, field in ModelConfig.model_fields.items() if name not in FROM_TABLE},
)


class LossConfig(BaseModel):
    """Loss weights of paper Eqs. (1), (4), (5), (8); lambda_div = lambda_sml = 0 is the paper's Baseline."""

    model_config = CONFIG

    lambda_gp: NonNegativeFloat = 10.0  # λ1, the WGAN-GP penalty
    lambda_cls_real: NonNegativeFloat = 1.0  # λ2, critic CE on real samples
    lambda_cls_fake: NonNegativeFloat = 1.0  # λ3, CE on generated samples (critic and generator)
    lambda_fm: NonNegativeFloat = 1.0  # λ4, feature matching
    lambda_div: NonNegativeFloat = 0.0  # λ5, diversity penalty
    lambda_sml: NonNegativeFloat = 0.0  # λ6, softmax matching against the downstream pool
    tau: PositiveFloat = 1.0  # bound of the diversity ratio in Eq. (7)


class OptimConfig(BaseModel):
    """Adam for both networks, WGAN-GP's critic schedule."""

    model_config = CONFIG

    lr_g: PositiveFloat = 1e-4
    lr_d: PositiveFloat = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    n_critic: PositiveInt = 5  # critic steps per generator step
    batch_size: PositiveInt = 32
    gp_every: PositiveInt = 1  # compute the penalty on every k-th critic step only (scaled by k)
    # Beyond the paper ("none" in its configuration): "linear" decays both learning rates to 0 at train.steps.
    lr_decay: Literal["none", "linear"] = "none"
    # Beyond the paper (0 in its configuration): critic steps before the first generator step, so that the
    # generator's first updates follow a trained critic, not a random one (a generator started well, e.g. at
    # model.mean_path_init gaussian, is otherwise pushed off its start by a critic that knows nothing yet).
    critic_warmup: Int = Field(default=0, ge=0)
    # Beyond the paper (None: lr_g, as every other generator weight): the learning rate of the generator's mean
    # path (model.mean_path); 0 keeps it where model.mean_path_init started it.
    lr_mean_path: NonNegativeFloat | None = None

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"Adam betas must lie in [0, 1), got {value}")
        return value


class TrainConfig(BaseModel):
    """Length, seeding, bookkeeping and hardware of a run."""

    model_config = CONFIG

    steps: PositiveInt = 1000  # generator steps
    seed: Seed = 0
    checkpoint_every: Int = Field(default=0, ge=0)  # 0: no intermediate checkpoints
    eval_every: Int = Field(default=0, ge=0)  # 0: never call the on_eval hook
    log_every: PositiveInt = 10
    device: DeviceName = "auto"  # "auto": cuda when available, else cpu
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; bf16: anywhere
    # Beyond the paper (0, off, in its configuration): decay of an exponential moving average of the generator's
    # weights; the average is what is sampled, selected and saved (it smooths the noise of Adam's steps).
    ema: float = Field(default=0.0, ge=0.0, lt=1.0)


PoolPoint = Literal["early", "middle", "converged"] | float


class PoolConfig(BaseModel):
    """The downstream checkpoints f_θ that L_SML draws from: k seeds x snapshot points."""

    model_config = CONFIG

    k: PositiveInt = 3
    # "early"/"middle" or a fraction are snapshots at that share of downstream.max_steps;
    # "converged" is the checkpoint selected by dev UAR.
    points: list[PoolPoint] = Field(default_factory=lambda: ["early", "middle", "converged"], min_length=1)
    downstream: DownstreamConfig = Field(default_factory=lambda: DownstreamConfig(max_steps=2000, eval_every=200))

    @field_validator("points")
    @classmethod
    def _fractions_in_range(cls, value: list[PoolPoint]) -> list[PoolPoint]:
        bad = [p for p in value if isinstance(p, float) and not 0.0 < p <= 1.0]
        if bad:
            raise ValueError(f"fractional pool points must lie in (0, 1], got {bad}")
        return value


class DistillConfig(BaseModel):
    """Everything a distillation run needs besides the feature tables (and their fold)."""

    model_config = CONFIG

    data: DataConfig = Field(default_factory=DataConfig)  # how dev is held out, how real features are normalised
    model: ModelSection = Field(default_factory=lambda: ModelSection(frames=32))
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)

    def model_for(self, dim: int, n_classes: int) -> ModelConfig:
        """The full ModelConfig for a feature table of `dim` features and `n_classes` labels."""
        try:
            return ModelConfig(**self.model.model_dump(), dim=dim, n_classes=n_classes)
        except ValidationError as exc:
            raise ConfigError(f"model section does not fit {dim}-dim features, {n_classes} classes: "
                              f"{field_problems(exc, 'model')}") from None

    def flatten(self) -> dict[str, Any]:
        """Every field under a dotted key ('loss.lambda_sml', 'model.arch', 'pool.downstream.lr')."""
        return _flatten(self.model_dump(mode="json"))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def preset_names() -> list[str]:
    """Names of the bundled presets (usable wherever a config path is expected)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_settings(source: str | Path) -> dict[str, Any]:
    """The settings of a YAML/JSON config file or preset name, as a mapping (not yet validated)."""
    path = Path(source)
    if not path.is_file() and str(source) in preset_names():
        path = PRESETS_DIR / f"{source}.yaml"
    if not path.is_file():
        raise ConfigError(f"config {source}: no such file, and not a preset (presets: {preset_names()})")
    data = read_json_config(path) if path.suffix == ".json" else read_yaml(path)
    if data is None:  # an empty file, or one of comments only: a truncated or unsaved config, not "all defaults"
        raise ConfigError(f"{path}: holds no settings (empty, or comments only): expected a mapping of sections, "
                          f"e.g. train: {{steps: 400}}, or a preset name ({', '.join(preset_names())})")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top, got {type(data).__name__}")
    return data


def read_json_config(path: Path) -> Any:
    """A JSON config file's value; a duplicate key, bad JSON or deep nesting is a ConfigError naming `path`."""
    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ConfigError(f"{path}: duplicate key {duplicates[0]!r} in one object: keep one")
        return dict(pairs)

    try:
        return json.loads(read_bounded(path, MAX_CONFIG_BYTES, "a JSON config"), object_pairs_hook=refuse_duplicates)
    except (ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else one_line(exc)
        raise ConfigError(f"{path}: not valid JSON ({problem})") from None


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r}: expected key=value, e.g. loss.lambda_sml=1.0")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: '{part}' is not a section")
    node[leaf] = parse_yaml(raw, f"override {override!r}: value")


def _describe(exc: ValidationError, source: str) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'")
        else:
            problems.append(f"'{where}': {error_message(error)} (got {error.get('input')!r})")
    return f"config {source}: " + "; ".join(problems)


def load_config(source: str | Path | Mapping[str, Any] | None = None, overrides: list[str] = (),
                settings: Mapping[str, Any] | None = None) -> DistillConfig:
    """A DistillConfig from a YAML/JSON file, preset name or mapping of settings (None: all defaults) with
    `a.b=value` overrides; `settings` are the source's settings read before (read_settings), so that the file is not
    opened again."""
    if isinstance(source, Mapping):
        source, settings = "<settings>", source
    elif source is not None and not isinstance(source, str | Path):
        raise ConfigError(f"config: expected a file, a preset name or a mapping of settings, got "
                          f"{type(source).__name__}")
    if settings is not None:
        data = copy.deepcopy(dict(settings))
    else:
        data = read_settings(source) if source is not None else {}
    for override in overrides:
        _apply_override(data, override)
    try:
        return DistillConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(source or "<defaults>"))) from None
