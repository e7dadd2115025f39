"""Each loss against a hand computation, and where its gradients go."""

import math

import pytest
import torch
from torch import nn

from emodistill.losses import (
    class_cross_entropy,
    critic_loss,
    diversity_loss,
    feature_matching,
    generator_adversarial_loss,
    gradient_penalty,
    sml_loss,
)
from emodistill.models import ModelConfig, build_discriminator, build_generator, make_latent


def test_adversarial_terms_by_hand():
    d_real, d_fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0, 5.0])
    assert critic_loss(d_real, d_fake).item() == pytest.approx(1.0 - 2.0)
    assert generator_adversarial_loss(d_fake).item() == pytest.approx(-1.0)


def test_class_cross_entropy_by_hand():
    logits, labels = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]]), torch.tensor([1, 0])
    expected = (-math.log(3 / 4) - math.log(1 / 2)) / 2
    assert class_cross_entropy(logits, labels).item() == pytest.approx(expected)


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic():
    w = torch.randn(3, 4)
    w /= w.norm()
    penalty = gradient_penalty(lambda x: (x * w).sum(dim=(1, 2)), torch.randn(5, 3, 4), torch.randn(5, 3, 4))
    assert penalty.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_by_hand_for_a_scaled_critic():
    # ||grad|| = 3 everywhere, so the penalty is (3 - 1)^2 whatever the interpolation weights.
    w = torch.zeros(2, 2)
    w[0, 1] = 3.0
    penalty = gradient_penalty(lambda x: (x * w).sum(dim=(1, 2)), torch.randn(4, 2, 2), torch.randn(4, 2, 2))
    assert penalty.item() == pytest.approx(4.0)


def test_gradient_penalty_interpolates_per_sample_with_the_given_generator():
    # critic(x) = ||x||^2 / 2 has gradient x, so the penalty reveals the interpolates; real = 1, fake = 0 => x̂ = a.
    real, fake = torch.ones(3, 1), torch.zeros(3, 1)
    half_square = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    seeded = [gradient_penalty(half_square, real, fake, torch.Generator().manual_seed(3)) for _ in "ab"]
    a = torch.rand(3, generator=torch.Generator().manual_seed(3))
    assert seeded[0].item() == seeded[1].item() == pytest.approx(((a - 1) ** 2).mean().item())


def test_gradient_penalty_trains_the_critic_and_not_the_generator():
    config = ModelConfig(arch="gan_cnn", frames=8, dim=8, n_classes=2, noise_dim=4, g_channels=8, d_channels=2)
    generator, critic = build_generator(config), build_discriminator(config)
    fake = generator(make_latent(torch.tensor([0, 1]), torch.randn(2, 4), 2))
    gradient_penalty(lambda x: critic(x)[0], torch.randn(2, 8, 8), fake).backward()
    assert all(layer[0].weight.grad.abs().sum() > 0 for layer in critic.layers)
    assert critic.score_head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in generator.parameters())


def test_feature_matching_by_hand():
    real = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0, 0.0], [0.0, 4.0]])]
    fake = [torch.tensor([2.0, 0.0], requires_grad=True), torch.zeros(2, 2, requires_grad=True)]
    loss = feature_matching(real, fake)
    assert loss.item() == pytest.approx((1.5 + 1.0) / 2)
    real_leaf = torch.ones(2, requires_grad=True)
    feature_matching([real_leaf], [fake[0]]).backward()
    assert real_leaf.grad is None and fake[0].grad is not None
    with pytest.raises(ValueError, match="layers"):
        feature_matching(real, fake[:1])


def test_sml_is_kl_of_softmaxes_by_hand():
    logits_real = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], requires_grad=True)
    logits_fake = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], requires_grad=True)
    p1, q1, p2, q2 = [0.25, 0.75], [0.5, 0.5], [0.5, 0.5], [0.75, 0.25]
    kl = lambda p, q: sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))  # noqa: E731
    loss = sml_loss(logits_real, logits_fake)
    assert loss.item() == pytest.approx((kl(p1, q1) + kl(p2, q2)) / 2)
    loss.backward()
    assert logits_real.grad is None and logits_fake.grad.abs().sum() > 0
    assert sml_loss(logits_fake, logits_fake.detach() + 7.0).item() == pytest.approx(0.0, abs=1e-6)


def test_diversity_by_hand_and_capped_by_tau():
    out1, out2 = torch.zeros(2, 2, 2), torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[4.0, 0.0], [0.0, 0.0]]])
    z1, z2 = torch.zeros(2, 3), torch.tensor([[2.0, 2.0, 2.0], [0.5, 0.5, 0.5]])
    # Per-sample ratios: (1 / 2) = 0.5 and (1 / 0.5) = 2.
    assert diversity_loss(out1, out2, z1, z2, tau=10.0).item() == pytest.approx(-(0.5 + 2.0) / 2)
    assert diversity_loss(out1, out2, z1, z2, tau=1.0).item() == pytest.approx(-(0.5 + 1.0) / 2)
    assert torch.isfinite(diversity_loss(out1, out1, z1, z1, tau=1.0))


def test_diversity_does_not_scale_with_the_feature_size():
    z1, z2 = torch.zeros(1, 4), torch.ones(1, 4)
    small = diversity_loss(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), z1, z2, tau=5.0)
    large = diversity_loss(torch.zeros(1, 20, 30), torch.ones(1, 20, 30), z1, z2, tau=5.0)
    assert small.item() == large.item() == pytest.approx(-1.0)


@pytest.mark.parametrize("arch", ["gan_cnn", "gan_att"])
def test_sml_and_diversity_train_only_the_generator(arch):
    torch.manual_seed(0)
    config = ModelConfig(arch=arch, frames=8, dim=8, n_classes=2, noise_dim=4, g_channels=8, d_channels=2)
    generator, critic = build_generator(config), build_discriminator(config)
    pool_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).requires_grad_(False)
    labels = torch.tensor([0, 1, 1])
    z1, z2 = (make_latent(labels, torch.randn(3, 4), 2) for _ in "ab")
    fake1, fake2 = generator(z1), generator(z2)
    real = torch.randn(3, 8, 8)
    loss = sml_loss(pool_model(real), pool_model(fake1)) + diversity_loss(fake1, fake2, z1, z2, tau=10.0)
    loss.backward()
    assert all(p.grad is not None for p in generator.parameters())
    assert sum(p.grad.abs().sum() for p in generator.parameters()) > 0
    assert all(p.grad is None for p in pool_model.parameters())
    assert all(p.grad is None for p in critic.parameters())
