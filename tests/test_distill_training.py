"""The distillation stage on micro shapes: real batches, the pool cache, the GAN loop, resume, divergence."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from emodistill import generator
from emodistill.distill import Distiller, Normalization, RealBatches, distill, load_config, train_pool
from emodistill.distill.checkpoint import load_checkpoint, save_checkpoint
from emodistill.distill.data import crop_or_repeat
from emodistill.downstream import DownstreamConfig, predict, train_downstream
from emodistill.errors import ConfigError, FeatureTableError, TrainingDiverged
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

    def evaluate(step, gen):
        evaluated.append(step)
        return {"eval_rows": gen.sample(1).num_rows}

    path = distill(train, dev, config, tmp_path / "run", pool=pool, evaluate=evaluate,
                   on_log=lambda step, metrics: logged.append((step, metrics)), progress=False)

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

    with pytest.raises(KeyboardInterrupt):  # killed after the checkpoint of step 2
        distill(train, dev, config, tmp_path / "split", pool=pool, on_log=_crash_at(3), progress=False)
    assert not (tmp_path / "split" / "generator").exists()
    steps_run = []
    resumed = generator.load(distill(train, dev, config, tmp_path / "split", pool=pool, resume=True,
                                     on_log=lambda step, losses: steps_run.append(step), progress=False))
    assert steps_run == [3, 4]  # it continued from the checkpoint rather than starting over
    for name, tensor in whole.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[name], tensor), name

    changed = config.model_copy(update={"loss": config.loss.model_copy(update={"lambda_fm": 0.5})})
    with pytest.raises(ConfigError, match="loss.lambda_fm"):
        distill(train, dev, changed, tmp_path / "split", pool=pool, resume=True, progress=False)


def test_resume_refuses_other_features_and_checkpoints_of_another_version(splits, pool, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=2", "train.checkpoint_every=1"])
    distill(train, dev, config, tmp_path / "run", pool=pool, features_fingerprint="aaaa", progress=False)
    longer = config.model_copy(update={"train": config.train.model_copy(update={"steps": 3})})
    with pytest.raises(ConfigError, match="trained on features aaaa, not on these \\(bbbb\\)"):
        distill(train, dev, longer, tmp_path / "run", pool=pool, features_fingerprint="bbbb", resume=True,
                progress=False)
    checkpoints = tmp_path / "run" / "checkpoints"
    state = load_checkpoint(checkpoints)
    del state["opt_g"]
    save_checkpoint(checkpoints, state)
    with pytest.raises(ConfigError, match=r"not a checkpoint of this emodistill version \(lacks \['opt_g'\]\)"):
        distill(train, dev, longer, tmp_path / "run", pool=pool, features_fingerprint="aaaa", resume=True,
                progress=False)


def test_the_saved_generator_is_the_one_dev_chose_even_where_test_disagrees(splits, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=6", "train.eval_every=2", "train.checkpoint_every=2",
                                           "train.ema=0.5"])
    # Dev peaks at step 4, test at step 6: the artifact must be step 4's generator and carry step 4's metrics.
    scores = {2: (0.4, 0.3), 4: (0.7, 0.5), 6: (0.6, 0.9)}
    samples = {}

    def evaluate(step, gen):
        samples[step] = gen.sample(2, seed=5)
        return {"dev_uar_ppc2": scores[step][0], "uar_ppc2": scores[step][1]}

    path = distill(train, dev, config, tmp_path / "run", evaluate=evaluate, select="dev_uar_ppc2", progress=False)
    chosen = generator.load(path)
    assert chosen.config["metrics"]["selected_step"] == 4 and chosen.config["metrics"]["steps"] == 6
    assert chosen.config["metrics"]["dev_uar_ppc2"] == 0.7 and chosen.config["metrics"]["uar_ppc2"] == 0.5
    assert chosen.sample(2, seed=5).equals(samples[4]) and not chosen.sample(2, seed=5).equals(samples[6])
    # The choice survives a resume: continuing the finished run to step 8 (dev 0.65) keeps step 4's generator.
    scores[8] = (0.65, 0.95)
    longer = config.model_copy(update={"train": config.train.model_copy(update={"steps": 8})})
    again = generator.load(distill(train, dev, longer, tmp_path / "run", evaluate=evaluate, select="dev_uar_ppc2",
                                   resume=True, progress=False))
    assert again.config["metrics"]["selected_step"] == 4 and again.sample(2, seed=5).equals(samples[4])


def test_ema_generator_is_the_average_and_resumes_exactly(splits, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=4", "train.checkpoint_every=2", "train.log_every=1",
                                           "train.ema=0.9"])
    plain = load_config("micro", MICRO + ["train.steps=4"])
    averaged = generator.load(distill(train, dev, config, tmp_path / "ema", progress=False))
    last = generator.load(distill(train, dev, plain, tmp_path / "plain", progress=False))
    weights = [n for n, _ in last.module.named_parameters()]
    assert any(not torch.equal(averaged.module.state_dict()[n], last.module.state_dict()[n]) for n in weights)
    with pytest.raises(KeyboardInterrupt):
        distill(train, dev, config, tmp_path / "split", on_log=_crash_at(3), progress=False)
    resumed = generator.load(distill(train, dev, config, tmp_path / "split", resume=True, progress=False))
    for name, tensor in averaged.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[name], tensor), name


def _crash_at(step_to_crash: int):
    def on_log(step, losses):
        if step == step_to_crash:
            raise KeyboardInterrupt(f"simulated kill at step {step}")
    return on_log


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


def test_linear_lr_decay_falls_to_zero_at_the_last_step(splits):
    train, _ = splits
    config = load_config("micro", MICRO + ["train.steps=4", "optim.lr_decay=linear", "optim.lr_g=0.4",
                                           "optim.lr_d=0.2"])
    run = Distiller(train, config, [])
    seen = []
    for _ in range(4):
        run.train_step()
        seen.append((run.opt_g.param_groups[0]["lr"], run.opt_d.param_groups[0]["lr"]))
    assert seen == [pytest.approx((0.4 * f, 0.2 * f)) for f in (1.0, 0.75, 0.5, 0.25)]
    plain = Distiller(train, load_config("micro", MICRO + ["optim.lr_g=0.4"]), [])
    plain.train_step()
    assert plain.opt_g.param_groups[0]["lr"] == 0.4


def test_a_folder_holding_a_run_is_replaced_only_when_asked(splits, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=2", "train.checkpoint_every=1"])
    first = distill(train, dev, config, tmp_path / "run", progress=False)
    before = (first / "model.safetensors").read_bytes()
    reseeded = config.model_copy(update={"train": config.train.model_copy(update={"seed": 5, "checkpoint_every": 0})})
    with pytest.raises(ConfigError, match="already holds a run .*--overwrite"):
        distill(train, dev, reseeded, tmp_path / "run", progress=False)
    assert (first / "model.safetensors").read_bytes() == before  # nothing of the old run was touched
    no_sad = train.subset(np.flatnonzero(train.labels != LABELS.index("sad")))
    with pytest.raises(FeatureTableError, match="no utterance of class"):
        distill(no_sad, dev, reseeded, tmp_path / "run", overwrite=True, progress=False)
    assert (tmp_path / "run" / "checkpoints").is_dir()  # an overwrite that is refused loses nothing
    distill(train, dev, reseeded, tmp_path / "run", overwrite=True, progress=False)
    assert (first / "model.safetensors").read_bytes() != before
    assert not (tmp_path / "run" / "checkpoints").exists()  # the old run's checkpoint is not left beside the new one


def test_a_resume_scoring_the_selection_otherwise_is_refused(splits, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=2", "train.checkpoint_every=1", "train.eval_every=1"])
    scores = iter([0.3, 0.6, 0.2])
    distill(train, dev, config, tmp_path / "run", evaluate=lambda step, g: {"dev_uar_ppc5": next(scores)},
            select="dev_uar_ppc5", selection={"draws": 2}, progress=False)
    longer = config.model_copy(update={"train": config.train.model_copy(update={"steps": 3})})
    for select, selection in (("dev_uar_ppc9", {"draws": 2}), ("dev_uar_ppc5", {"draws": 3})):
        with pytest.raises(ConfigError, match="cannot resume, the checkpoint was chosen on dev with"):
            distill(train, dev, longer, tmp_path / "run", resume=True, select=select, selection=selection,
                    evaluate=lambda step, g: {select: 0.5}, progress=False)
    path = distill(train, dev, longer, tmp_path / "run", resume=True, select="dev_uar_ppc5", selection={"draws": 2},
                   evaluate=lambda step, g: {"dev_uar_ppc5": next(scores)}, progress=False)
    assert generator.load(path).config["metrics"]["selected_step"] == 2  # 0.6 at step 2 still beats 0.2 at step 3


def test_a_class_without_training_utterances_is_refused_before_training(splits, tmp_path):
    train, dev = splits
    no_sad = train.subset(np.flatnonzero(train.labels != LABELS.index("sad")))
    config = load_config("micro", MICRO + ["train.steps=2"])
    with pytest.raises(FeatureTableError, match=r"no utterance of class\(es\) \[.sad.\]"):
        distill(no_sad, dev, config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_device_this_machine_lacks_is_refused_by_the_run_naming_its_key(splits):
    config = load_config("micro", MICRO + ["train.device=cuda:99"])  # validates: a worker elsewhere may have it
    with pytest.raises(ConfigError, match=r"^'train.device': device 'cuda:99': .*choose 'auto' or 'cpu'"):
        Distiller(splits[0], config, [])


def test_a_damaged_checkpoint_is_one_line(splits, tmp_path):
    train, dev = splits
    config = load_config("micro", MICRO + ["train.steps=2", "train.checkpoint_every=1"])
    distill(train, dev, config, tmp_path / "run", progress=False)
    checkpoints = tmp_path / "run" / "checkpoints"
    state = load_checkpoint(checkpoints)
    state["generator"] = {"no.such.weight": torch.zeros(1)}
    save_checkpoint(checkpoints, state)
    with pytest.raises(ConfigError, match="weights, optimiser or random state do not fit this run"):
        distill(train, dev, config, tmp_path / "run", resume=True, progress=False)
    state["config"] = "[[["
    save_checkpoint(checkpoints, state)
    with pytest.raises(ConfigError, match="its config is damaged"):
        distill(train, dev, config, tmp_path / "run", resume=True, progress=False)


def test_critic_and_generator_steps_under_bf16_autocast_match_fp32(splits, pool):
    """What a GPU run computes under bf16 autocast, checked on the CPU: every loss term of a critic step (the
    gradient penalty's double backward included) and of a generator step (every term on), and the gradients they
    give, against fp32 on the same weights and batches."""
    train, _ = splits
    terms_on = MICRO + ["optim.gp_every=1", "loss.lambda_gp=10", "loss.lambda_fm=1", "loss.lambda_div=1",
                        "loss.lambda_sml=1"]
    exact, bf16 = (Distiller(train, load_config("micro", terms_on + [f"train.precision={p}"]), pool)
                   for p in ("fp32", "bf16"))
    assert not exact.bf16 and bf16.bf16

    def close(ours: torch.Tensor, reference: torch.Tensor) -> bool:
        # bf16 keeps 8 significant bits (relative step 2**-8): a few steps of it through the networks.
        return bool(torch.allclose(ours.float(), reference, rtol=0.05, atol=0.02 * reference.abs().max() + 1e-3))

    for step in ("critic", "generator"):
        bf16.D.load_state_dict(exact.D.state_dict())  # the same weights: the critic update made them differ
        bf16.G.load_state_dict(exact.G.state_dict())
        ours, reference = (_seeded(run.critic_step, 0) if step == "critic" else _seeded(run.generator_step)
                           for run in (bf16, exact))
        assert set(ours) == set(reference) and ("gp" in ours if step == "critic" else {"fm", "div", "sml"} <= set(ours))
        for name in reference:
            assert close(ours[name], reference[name]), (step, name, float(ours[name]), float(reference[name]))
        # The update each step makes, as one vector over the network it trains (a bias before a norm layer has a
        # gradient of ~0 in fp32, all rounding: compared alone its relative error means nothing).
        ours_g, reference_g = (torch.cat([p.grad.float().flatten() for p in net.parameters() if p.grad is not None])
                               for net in ((bf16.D, exact.D) if step == "critic" else (bf16.G, exact.G)))
        error = float((ours_g - reference_g).norm() / reference_g.norm())
        cosine = float(torch.nn.functional.cosine_similarity(ours_g, reference_g, dim=0))
        assert error < 0.25 and cosine > 0.97, (step, error, cosine)  # measured: 0.10 / 0.995 and 0.16 / 0.987


def _seeded(step, *args):
    """`step(*args)` with torch's global generator (the penalty's interpolation weights) seeded alike."""
    torch.manual_seed(7)
    return step(*args)
