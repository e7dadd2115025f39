"""The distillation stage on micro shapes: real batches, the pool cache, the GAN loop, resume, divergence."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from emodistill import generator
from emodistill.distill import Hooks, Normalization, RealBatches, distill, load_config, train_pool
from emodistill.distill.data import crop_or_repeat
from emodistill.downstream import DownstreamConfig, predict, train_downstream
from emodistill.errors import ConfigError, TrainingDiverged
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import validate_table
from emodistill.features.store import build_table
from toy import toy_meta

LABELS = ["neu", "hap", "ang", "sad"]
DIM = 12
# Micro GAN: 16 x 12 maps, one critic step per generator step; the penalty every other critic step.
MICRO = ["model.frames=16", "optim.batch_size=8", "optim.n_critic=1", "optim.gp_every=2", "train.device=cpu",
         "pool.k=1", "pool.points=[early, converged]", "pool.downstream.max_steps=4", "pool.downstream.eval_every=2",
         "pool.downstream.batch_size=8", "pool.downstream.device=cpu"]


def toy_features(n: int, seed: int, nan: bool = False) -> FeatureSet:
    """Utterances of 6..40 frames whose mean depends on the class, as a validated feature table."""
    rng = np.random.default_rng(seed)
    meta = toy_meta(DIM, labels=LABELS, split="train")
    items = []
    for i in range(n):
        y = i % len(LABELS)
        frames = rng.normal(3.0 * y - 5.0, 1.0, (int(rng.integers(6, 40)), DIM)).astype(np.float32)
        items.append(({"utt_id": f"u{i:03d}", "speaker": f"s{i % 3}", "label": LABELS[y]}, frames))
    if nan:
        items[0][1][0, 0] = np.nan
    return FeatureSet.from_table(build_table(items, meta), "toy")


@pytest.fixture(scope="module")
def splits():
    return toy_features(32, seed=0), toy_features(12, seed=1)


@pytest.fixture(scope="module")
def pool(splits):
    return train_pool(*splits, load_config("micro", MICRO).pool)


def test_crop_or_repeat():
    frames = np.arange(10, dtype=np.float32)[:, None]
    window = crop_or_repeat(frames, 4, np.random.default_rng(0))
    assert window.shape == (4, 1) and np.all(np.diff(window[:, 0]) == 1)  # a contiguous slice
    np.testing.assert_array_equal(crop_or_repeat(frames[:3], 7, np.random.default_rng(0))[:, 0], [0, 1, 2, 0, 1, 2, 0])


def test_real_batches_are_normalised_and_seeded(splits):
    train, _ = splits
    norm = Normalization.of(train)
    np.testing.assert_allclose(norm.mean, train.frames.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.std, train.frames.std(axis=0), rtol=1e-4)
    batches = [RealBatches(train, 16, 64, norm, np.random.default_rng(3)).next() for _ in range(2)]
    (x, y), (x2, y2) = batches
    assert x.shape == (64, 16, DIM) and x.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert abs(x.mean().item()) < 0.3 and 0.7 < x.std().item() < 1.3
    real = RealBatches(train, 16, 64, norm, np.random.default_rng(3)).denormalize(x)
    assert real.mean().item() == pytest.approx(train.frames.mean(), abs=1.0)


def test_pool_is_frozen_and_cached(splits, tmp_path, monkeypatch, caplog):
    config = load_config("micro", MICRO).pool
    first = train_pool(*splits, config, cache_dir=tmp_path)
    assert len(first) == 2  # one seed x (early, converged)
    assert all(not m.training and not any(p.requires_grad for p in m.parameters()) for m in first)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached pool must be reused")

    monkeypatch.setattr("emodistill.distill.pool.train_downstream", no_training)
    with caplog.at_level(logging.INFO, logger="emodistill.distill.pool"):
        second = train_pool(*splits, config, cache_dir=tmp_path)
    assert "reusing pool from" in caplog.text
    for a, b in zip(first, second):
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(AssertionError, match="reused"):  # another pool config is another cache entry
        train_pool(*splits, config.model_copy(update={"k": 2}), cache_dir=tmp_path)


def test_micro_distillation_end_to_end(splits, pool, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=4", "train.log_every=2", "train.eval_every=2",
                                           "loss.lambda_div=1", "loss.lambda_sml=1"])
    logged, evaluated = [], []

    def on_eval(step, gen):
        evaluated.append(step)
        return {"eval_rows": gen.sample(1).num_rows}

    hooks = Hooks(on_log=lambda step, metrics: logged.append((step, metrics)), on_eval=on_eval)
    path = distill(train, dev, config, tmp_path / "run", pool=pool, hooks=hooks, progress=False)

    assert [step for step, _ in logged] == [2, 4] and evaluated == [2, 4]
    expected = {"loss_d", "loss_g", "wasserstein", "gp", "cls_real", "cls_fake", "fm", "div", "sml"}
    assert expected <= set(logged[-1][1])
    gen = generator.load(path)
    assert gen.config["metrics"]["eval_rows"] == 4 and gen.config["metrics"]["steps"] == 4
    table = gen.sample(3, seed=1)
    assert validate_table(table, "synthetic").dim == DIM
    synthetic = FeatureSet.from_table(table)
    # De-normalised at sample time: the synthetic frames live on the real features' scale, not around 0.
    assert abs(synthetic.frames.mean() - train.frames.mean()) < 3.0
    result = train_downstream(synthetic, dev, DownstreamConfig(max_steps=2, eval_every=1, batch_size=4, device="cpu"),
                              progress=False)
    assert predict(result.model, dev, device="cpu").shape == (len(dev),)


def test_resume_is_bit_identical(splits, pool, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=4", "train.checkpoint_every=2", "train.log_every=1",
                                           "loss.lambda_div=1", "loss.lambda_sml=1"])
    whole = generator.load(distill(train, dev, config, tmp_path / "whole", pool=pool, progress=False))

    def crash_at_2(step, path):
        if step == 2:
            raise KeyboardInterrupt("simulated kill after the first checkpoint")

    with pytest.raises(KeyboardInterrupt):
        distill(train, dev, config, tmp_path / "split", pool=pool, hooks=Hooks(on_checkpoint=crash_at_2),
                progress=False)
    assert not (tmp_path / "split" / "generator").exists()
    steps_run = []
    hooks = Hooks(on_log=lambda step, metrics: steps_run.append(step))
    resumed = generator.load(distill(train, dev, config, tmp_path / "split", pool=pool, resume=True, hooks=hooks,
                                     progress=False))
    assert steps_run == [3, 4]  # it continued from the checkpoint rather than starting over
    for name, tensor in whole.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[name], tensor), name

    changed = config.model_copy(update={"loss": config.loss.model_copy(update={"lambda_fm": 0.5})})
    with pytest.raises(ConfigError, match="loss.lambda_fm"):
        distill(train, dev, changed, tmp_path / "split", pool=pool, resume=True, progress=False)


def test_nan_features_raise_training_diverged(tmp_path):
    train = toy_features(8, seed=0, nan=True)
    config = load_config("micro", MICRO + ["train.steps=2"])
    with pytest.raises(TrainingDiverged, match=r"loss '\w+' is nan at generator step 1"):
        distill(train, train, config, tmp_path / "nan", progress=False)


def test_sml_without_pool_trains_and_caches_one(splits, tmp_path, caplog):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=1", "loss.lambda_sml=1"])
    distill(train, dev, config, tmp_path / "a", pool_cache_dir=tmp_path / "pools", progress=False)
    with caplog.at_level(logging.INFO, logger="emodistill.distill.pool"):
        distill(train, dev, config, tmp_path / "b", pool_cache_dir=tmp_path / "pools", progress=False)
    assert "reusing pool from" in caplog.text
