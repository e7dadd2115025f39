"""The class-conditional Gaussian generator: what it fits, its artifact round trip, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emodistill import generator
from emodistill.distill import Normalization, distill, fit_gaussian_generator, load_config
from emodistill.distill.gaussian import utterance_means
from emodistill.errors import FeatureTableError
from emodistill.features.dataset import FeatureSet
from emodistill.features.store import build_table
from emodistill.models import ModelConfig
from toy import LABELS, toy_meta

DIM = 8
CENTRES = np.array([[-2.0] * DIM, [0.0] * DIM, [2.0] * DIM, [4.0] * DIM])


def toy_features(per_class: int, seed: int = 0) -> FeatureSet:
    """Utterances whose mean frame is its class centre plus a per-utterance N(0, 0.5²) offset, frames ± N(0, 1)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(per_class * len(LABELS)):
        y = i % len(LABELS)
        centre = CENTRES[y] + rng.normal(0.0, 0.5, DIM)
        frames = centre + rng.normal(0.0, 1.0, (int(rng.integers(80, 120)), DIM))
        items.append(({"utt_id": f"u{i:04d}", "speaker": "s", "label": LABELS[y]}, frames.astype(np.float32)))
    return FeatureSet.from_table(build_table(items, toy_meta(DIM, split="train")), "toy")


def gaussian_config(frames: int = 50):
    return load_config(None, ["model.arch=gaussian", f"model.frames={frames}", "train.device=cpu"])


def test_samples_follow_the_class_means_and_spreads_of_the_real_utterances():
    train = toy_features(60)
    gen = fit_gaussian_generator(train, gaussian_config(frames=400))
    synthetic = gen.sample_features(300, seed=1)
    means = np.stack([synthetic.utterance(i).mean(axis=0) for i in range(len(synthetic))])
    for c in range(len(LABELS)):
        of_class = means[synthetic.labels == c]
        np.testing.assert_allclose(of_class.mean(axis=0), CENTRES[c], atol=0.2)
        # The spread of the utterance means is the 0.5 offsets, not the frames' 1.0 (plus 1/sqrt(400) of it).
        np.testing.assert_allclose(of_class.std(axis=0), np.hypot(0.5, 1 / 20), rtol=0.25)
    frames = synthetic.utterance(0)
    assert 0.8 < float((frames - frames.mean(axis=0)).std()) < 1.2  # frames scatter ± 1 around the centre


def test_noise_covers_the_centre_and_every_frame():
    config = ModelConfig(arch="gaussian", frames=10, dim=DIM, n_classes=4, noise_dim=3)
    assert config.noise_dim == 11 * DIM


def test_distill_fits_saves_and_reloads_the_gaussian_without_training(tmp_path):
    train = toy_features(10)
    seen = []
    path = distill(train, toy_features(4, seed=1), gaussian_config(), tmp_path / "run",
                   evaluate=lambda step, gen: seen.append(step) or {"uar_ppc5": 0.5}, progress=False)
    assert seen == [0]  # evaluated once, at step 0
    assert not (tmp_path / "run" / "checkpoints").exists()
    loaded = generator.load(path)
    assert loaded.config["model"]["arch"] == "gaussian"
    assert loaded.config["metrics"]["steps"] == 0 and loaded.config["metrics"]["uar_ppc5"] == 0.5
    fitted = fit_gaussian_generator(train, gaussian_config())
    for name, tensor in fitted.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name
    assert loaded.sample(3, seed=2).equals(fitted.sample(3, seed=2))


def test_utterance_means_are_normalised_means_of_each_utterance():
    train = toy_features(3)
    norm = Normalization.of(train)
    expected = np.stack([(train.utterance(i).mean(axis=0) - norm.mean) / norm.std for i in range(len(train))])
    np.testing.assert_allclose(utterance_means(train, norm), expected, rtol=1e-5, atol=1e-6)


def test_a_class_with_one_utterance_is_refused():
    train = toy_features(3)
    keep = np.concatenate([np.flatnonzero(train.labels != 3), np.flatnonzero(train.labels == 3)[:1]])
    with pytest.raises(FeatureTableError, match=r"at least 2 training utterances .*\['sad'\]"):
        fit_gaussian_generator(train.subset(keep), gaussian_config())


def test_a_class_without_utterances_is_refused_naming_it():
    train = toy_features(3)
    with pytest.raises(FeatureTableError, match=r"no utterance of class\(es\) \['sad'\]"):
        fit_gaussian_generator(train.subset(np.flatnonzero(train.labels != 3)), gaussian_config())


def test_the_gaussian_records_the_fold_it_was_fitted_on(tmp_path):
    path = distill(toy_features(3), toy_features(2, seed=1), gaussian_config(), tmp_path / "run",
                   features_fingerprint="f00d", progress=False)
    assert generator.load(path).config["features"] == "f00d"
    assert fit_gaussian_generator(toy_features(3), gaussian_config(), "beef").config["features"] == "beef"
