"""What a trial is called and tagged: named from what varies between the sweep's trials, the same everywhere
(MLflow's runs table, chart legends, the sweep report)."""

from __future__ import annotations

from emodistill.distill.config import DistillConfig
from emodistill.sweep.space import FOLD_KEY, VARIANT_KEY, GridSearch, SearchSpace
from emodistill.tracking.naming import SEPARATOR, trial_index
from emodistill.tracking.runs import ARCH_TAG, VARIANT_TAG

# Short forms of the keys a sweep varies most (others are shown by their last part).
SHORT = {"loss.lambda_cls_real": "λ2", "loss.lambda_cls_fake": "λ3", "loss.lambda_fm": "λ4",
         "loss.lambda_div": "λdiv", "loss.lambda_sml": "λsml", "loss.tau": "τ", "optim.lr_g": "lr_g",
         "optim.lr_d": "lr_d", "optim.n_critic": "n_critic", "train.seed": "seed"}
ARCH_KEY = "model.arch"


def _value(value: object) -> str:
    """3 significant digits for floats, as-is otherwise."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _label(key: str, value: object) -> str:
    if key == "train.seed":
        return f"seed {value}"
    return f"{SHORT.get(key, key.rsplit('.', 1)[-1])}={_value(value)}"


def trial_name(space: SearchSpace, config: dict, distill_config: DistillConfig, trial_id: str) -> str:
    """`gan_att · div_sml · λsml=10 · seed 0`: the architecture, the variant, then every other varied value, and
    `fold K` when the space runs on several folds.

    Repeated grids and sampled searches add the trial's index (`#3`), so that every name in a sweep is unique.
    """
    overrides = {k: v for k, v in config.items() if k not in (VARIANT_KEY, ARCH_KEY, FOLD_KEY)}
    parts = [distill_config.model.arch] + ([config[VARIANT_KEY]] if VARIANT_KEY in config else [])
    parts += [_label(key, value) for key, value in sorted(overrides.items())]
    if FOLD_KEY in config:
        parts.append(f"fold {config[FOLD_KEY]}")
    if not isinstance(space.search, GridSearch) or space.trials > 1:
        parts.append(f"#{trial_index(trial_id)}")
    return SEPARATOR.join(parts)


def sibling_name(name: str, variant: str) -> str:
    """The name of the trial (or setting) that differs from `name` (`arch · variant · ...`) only by its variant."""
    arch, _, *rest = name.split(SEPARATOR)
    return SEPARATOR.join([arch, variant, *rest])


def trial_tags(config: dict, distill_config: DistillConfig) -> dict[str, str]:
    """Tags a user filters trials on: the variant (when the space has variants) and the architecture."""
    tags = {ARCH_TAG: distill_config.model.arch}
    if VARIANT_KEY in config:
        tags[VARIANT_TAG] = config[VARIANT_KEY]
    return tags
