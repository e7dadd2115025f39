"""The recipe's options beyond the paper: a mean path started at the class-conditional Gaussian of the real
utterance means (and kept there by a zero learning rate), a body centred over time, the critic's warm-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emodistill.distill import Distiller, Normalization, load_config
from emodistill.distill.gaussian import mean_path_start, utterance_means
from emodistill.errors import ConfigError
from emodistill.models import make_latent
from test_distill_training import MICRO, toy_features

WARM = [*MICRO, "model.arch=gan_att", "model.g_channels=8", "model.attention_heads=2", "model.mean_path=true",
        "model.mean_path_init=gaussian", "model.body_centered=true", "model.noise_dim=12", "loss.lambda_sml=0"]


@pytest.fixture(scope="module")
def train():
    return toy_features(64, seed=0)


def test_the_mean_path_starts_at_the_class_gaussian_of_the_utterance_means(train):
    run = Distiller(train, load_config("small", WARM), [])
    norm = run.normalization
    means, factor = mean_path_start(train, norm, 12)
    real = utterance_means(train, norm)
    for c in range(4):
        np.testing.assert_allclose(means[c], real[train.labels == c].mean(axis=0), atol=1e-5)
    # The factor's columns carry the pooled within-class covariance of the utterance means (D = noise_dim = 12).
    within = real - means[train.labels]
    np.testing.assert_allclose(factor @ factor.T, np.cov(within.T, ddof=1), atol=1e-4)
    # A centred body leaves each generated utterance's mean frame to the mean path: class mean + factor @ e.
    labels = torch.tensor([0, 1, 2, 3] * 64)
    noise = torch.randn(len(labels), 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = run.G.eval()(make_latent(labels, noise, 4))
    expected = torch.from_numpy(means)[labels] + noise @ torch.from_numpy(factor).T
    torch.testing.assert_close(fake.mean(dim=1), expected, atol=1e-4, rtol=1e-4)


def test_a_zero_mean_path_rate_keeps_it_where_it_started_while_the_rest_trains(train):
    config = load_config("small", [*WARM, "optim.lr_mean_path=0", "train.steps=3"])
    run = Distiller(train, config, [])
    start = {name: p.detach().clone() for name, p in run.G.named_parameters()}
    run.train_steps(3)
    moved = {name for name, p in run.G.named_parameters() if not torch.equal(p, start[name])}
    assert moved and not {name for name in moved if name.startswith("mean_path.")}
    assert "out.weight" in moved


def test_the_critic_warms_up_before_the_first_generator_step(train, monkeypatch):
    config = load_config("small", [*WARM, "optim.critic_warmup=3", "optim.n_critic=2"])
    run = Distiller(train, config, [])
    indexes = []
    original = run.critic_step
    monkeypatch.setattr(run, "critic_step", lambda i: indexes.append(i) or original(i))
    run.train_steps(2)
    assert indexes == [0, 1, 2, 3, 4, 5, 6]  # 3 warm-up + 2 critic steps, then 2 more after the first G step


def test_the_options_need_the_mean_path(train):
    with pytest.raises(ConfigError, match="mean_path_init 'gaussian' needs mean_path: true"):
        Distiller(train, load_config("small", [*WARM, "model.mean_path=false", "model.body_centered=false"]), [])
    with pytest.raises(ConfigError, match="body_centered needs mean_path"):
        Distiller(train, load_config("small", [*WARM, "model.mean_path=false", "model.mean_path_init=zero"]), [])
    assert isinstance(Normalization.of(train), Normalization)
