"""The paper's training losses (Sec. 4, Eqs. 1-7) as pure functions of tensors."""

from emodistill.losses.adversarial import class_cross_entropy, critic_loss, generator_adversarial_loss, gradient_penalty
from emodistill.losses.diversity import diversity_loss
from emodistill.losses.matching import feature_matching, sml_loss

__all__ = [
    "class_cross_entropy",
    "critic_loss",
    "diversity_loss",
    "feature_matching",
    "generator_adversarial_loss",
    "gradient_penalty",
    "sml_loss",
]
