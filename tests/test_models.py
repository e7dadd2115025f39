"""Shapes, layer counts, config validation and determinism of the generators and the critic."""

import pytest
import torch
from pydantic import ValidationError

from emodistill.models import (
    Discriminator,
    GanAttGenerator,
    GanCnnGenerator,
    ModelConfig,
    build_discriminator,
    build_generator,
    count_parameters,
    make_latent,
    size_mb,
)

ARCHS = ["gan_cnn", "gan_att"]


def micro(arch, frames=12, dim=20, **kw):
    return ModelConfig(arch=arch, frames=frames, dim=dim, n_classes=3, noise_dim=6, g_channels=8, d_channels=2, **kw)


def latent(config, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, config.n_classes, (batch,), generator=g)
    return make_latent(labels, torch.randn(batch, config.noise_dim, generator=g), config.n_classes)


def test_make_latent_is_one_hot_then_noise():
    noise = torch.tensor([[0.5, -1.0], [2.0, 3.0]])
    z = make_latent(torch.tensor([2, 0]), noise, n_classes=3)
    assert torch.equal(z, torch.tensor([[0.0, 0.0, 1.0, 0.5, -1.0], [1.0, 0.0, 0.0, 2.0, 3.0]]))


def test_config_resolves_paper_channels():
    assert ModelConfig(arch="gan_cnn", frames=8, dim=8, n_classes=4).g_channels == 256
    assert ModelConfig(arch="gan_att", frames=8, dim=8, n_classes=4).g_channels == 128
    assert ModelConfig(frames=8, dim=8, n_classes=4, g_channels=32).g_channels == 32


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"frames": 4}, "frames"),
        ({"n_classes": 1}, "n_classes"),
        ({"arch": "gan_rnn"}, "arch"),
        ({"g_channels": 30}, "multiple of 4"),
        ({"g_channels": 12, "attention_heads": 8}, "attention_heads"),
        ({"typo": 1}, "typo"),
    ],
)
def test_config_rejects_bad_fields(fields, message):
    with pytest.raises(ValidationError, match=message):
        ModelConfig(**{"frames": 16, "dim": 16, "n_classes": 4, **fields})


def test_build_picks_the_named_classes():
    assert isinstance(build_generator(micro("gan_cnn")), GanCnnGenerator)
    assert isinstance(build_generator(micro("gan_att")), GanAttGenerator)
    assert isinstance(build_discriminator(micro("gan_att")), Discriminator)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("frames, dim", [(8, 8), (13, 37), (32, 80), (17, 9)])
def test_generator_and_critic_shapes(arch, frames, dim):
    config = micro(arch, frames, dim)
    generator = build_generator(config)
    assert (generator.n_classes, generator.noise_dim, generator.frames, generator.dim) == (3, 6, frames, dim)
    x = generator(latent(config, batch=3))
    assert x.shape == (3, frames, dim)
    score, logits, features = build_discriminator(config)(x)
    assert score.shape == (3,) and logits.shape == (3, 3)
    assert len(features) == 8


@pytest.mark.parametrize("arch", ARCHS)
def test_hubert_base_shape(arch):
    config = micro(arch, frames=200, dim=768)
    x = build_generator(config).eval()(latent(config, batch=1))
    assert x.shape == (1, 200, 768)
    score, logits, _ = build_discriminator(config)(x)
    assert score.shape == (1,) and logits.shape == (1, 3)


def test_critic_features_shrink_and_reject_wrong_shape():
    critic = Discriminator(frames=16, dim=32, n_classes=2, channels=2)
    _, _, features = critic(torch.randn(2, 16, 32))
    assert features[0].shape == (2, 2, 16, 32)
    assert features[-1].shape == (2, 8, 1, 2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    with pytest.raises(ValueError, match=r"\(B, 16, 32\)"):
        critic(torch.randn(2, 16, 33))


@pytest.mark.parametrize("arch", ARCHS)
def test_generator_output_is_unbounded(arch):
    # No tanh: a constant output layer of 5 must come out as 5, not tanh(5).
    generator = build_generator(micro(arch))
    with torch.no_grad():
        generator.out.weight.zero_()
        generator.out.bias.fill_(5.0)
    assert torch.equal(generator(latent(micro(arch))), torch.full((2, 12, 20), 5.0))


@pytest.mark.parametrize("arch", ARCHS)
def test_deterministic_under_seed(arch):
    config = micro(arch)
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        outputs.append(build_generator(config)(latent(config, batch=4)))
    assert torch.equal(*outputs)


def test_generator_conditions_on_the_label():
    config = micro("gan_att")
    torch.manual_seed(0)
    generator = build_generator(config).eval()
    noise = torch.randn(1, config.noise_dim)
    a, b = (generator(make_latent(torch.tensor([y]), noise, config.n_classes)) for y in (0, 1))
    assert not torch.allclose(a, b)


def test_sizes():
    layer = torch.nn.Linear(3, 2)
    assert count_parameters(layer) == 8
    assert size_mb(layer) == pytest.approx(32 / 1e6)
    norm = torch.nn.BatchNorm1d(5)  # 10 weights + 10 running statistics + 1 step counter, all stored
    assert count_parameters(norm) == 10 and size_mb(norm) == pytest.approx(21 * 4 / 1e6)


@pytest.mark.parametrize("arch", ARCHS)
def test_mean_path_starts_at_zero_and_leaves_the_paper_generator_unchanged(arch):
    torch.manual_seed(0)
    plain = build_generator(micro(arch))
    torch.manual_seed(0)
    with_path = build_generator(micro(arch, mean_path=True))
    for name, tensor in plain.state_dict().items():  # the same initial weights: the path draws no randomness
        assert torch.equal(with_path.state_dict()[name], tensor), name
    z = latent(micro(arch), batch=4)
    plain.eval(), with_path.eval()
    assert torch.equal(plain(z), with_path(z))
    # It is a per-utterance mean frame: constant over time, linear in z, and it learns.
    with torch.no_grad():
        with_path.mean_path.linear.bias.fill_(0.1)
    offset = with_path(z) - plain(z)
    assert torch.allclose(offset, torch.full_like(offset, 0.1 * with_path.mean_path.GAIN))
    with_path(z).sum().backward()
    assert with_path.mean_path.linear.weight.grad.abs().sum() > 0


def test_critic_stats_feed_each_samples_level_and_spread_to_both_heads():
    config = micro("gan_cnn", critic_stats=True)
    critic = build_discriminator(config)
    plain = build_discriminator(micro("gan_cnn"))
    assert count_parameters(critic) - count_parameters(plain) == (2 * 20 * 64 + 64) + 64 * (1 + 3)
    x = torch.randn(5, 12, 20, requires_grad=True)
    score, logits, features = critic(x)
    assert score.shape == (5,) and logits.shape == (5, 3) and len(features) == 8
    # A louder copy of a sample (every frame + 1): the LayerNorm-ed conv path barely sees it, the branch does.
    shifted = critic.stats(x + 1.0) - critic.stats(x)
    assert shifted.abs().max() > 1e-3
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)  # the gradient penalty still works
    assert torch.isfinite(grad).all()
