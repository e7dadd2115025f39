"""The SUPERB downstream: masking, batching, training on a separable toy set, determinism, I/O."""

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError

from emodistill.downstream import (DownstreamConfig, MeanPoolLinear, embed_set, load_downstream, predict,
                                   predict_logits, save_downstream, train_downstream)
from emodistill.downstream.batching import eval_batches, make_batch, train_batches
from emodistill.errors import ConfigError, EmodistillError, FeatureTableError, TrainingDiverged
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import feature_schema
from toy import toy_meta

DIM = 6
LABELS = ("neu", "hap", "ang")



def toy_set(n: int, seed: int, lengths=(3, 12), dtype: str = "float32") -> FeatureSet:
    """A separable set: each class shifts a different feature dimension of every frame."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n)
    n_frames = rng.integers(lengths[0], lengths[1] + 1, n)
    frames = rng.normal(0, 1, (n_frames.sum(), DIM))
    frames[np.arange(len(frames)), np.repeat(labels, n_frames)] += 3.0
    meta = toy_meta(DIM, labels=LABELS, upstream="toy", dtype=dtype)
    return FeatureSet.packed(frames=frames.astype(dtype), offsets=np.concatenate([[0], np.cumsum(n_frames)]),
                             labels=labels, label_names=LABELS, speakers=tuple(f"spk{i % 2}" for i in range(n)),
                             utt_ids=tuple(f"utt{i}" for i in range(n)), meta=meta)


def as_table(fs: FeatureSet) -> pa.Table:
    """The feature-schema Arrow table holding fs."""
    schema = feature_schema(fs.meta)
    float_type = schema.field("features").type.value_type.value_type
    frames = pa.FixedSizeListArray.from_arrays(pa.array(fs.frames.ravel(), float_type), fs.dim)
    features = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], fs.ends]), pa.int32()), frames)
    columns = {"utt_id": list(fs.utt_ids), "speaker": list(fs.speakers), "gender": [None] * len(fs),
               "session": [None] * len(fs), "label": [fs.label_names[i] for i in fs.labels],
               "n_frames": fs.lengths.tolist(), "features": features}
    return pa.table(columns, schema=schema)


def quick_config(**overrides) -> DownstreamConfig:
    return DownstreamConfig(**{"lr": 1e-2, "batch_size": 8, "max_steps": 60, "eval_every": 20, "seed": 3,
                               "device": "cpu", "hidden": 16, **overrides})


def test_model_shapes():
    model = MeanPoolLinear(DIM, 4, hidden=16)
    x = torch.randn(5, 7, DIM)
    assert model(x).shape == (5, 4)
    assert model.embed(x, torch.ones(5, 7, dtype=torch.bool)).shape == (5, 16)


def test_padding_does_not_change_pooled_output():
    torch.manual_seed(0)
    model = MeanPoolLinear(DIM, 3, hidden=16)
    short, long = torch.randn(4, DIM), torch.randn(9, DIM)
    padded = torch.full((2, 9, DIM), 1e3)  # garbage in the padding must be ignored, not just zeros
    padded[0, :4], padded[1] = short, long
    mask = torch.arange(9)[None, :] < torch.tensor([[4], [9]])
    pooled = model.embed(padded, mask)
    torch.testing.assert_close(pooled[0], model.embed(short[None])[0])
    torch.testing.assert_close(pooled[1], model.embed(long[None])[0])
    torch.testing.assert_close(model(padded, mask)[0], model(short[None])[0])


def test_make_batch_gathers_and_masks_utterances():
    fs = toy_set(7, seed=0)
    index = np.array([5, 1, 3])
    batch = make_batch(fs, index)
    lengths = fs.lengths[index]
    assert batch.x.shape == (3, lengths.max(), DIM) and batch.x.dtype == torch.float32
    assert batch.mask.sum(1).tolist() == lengths.tolist()
    for row, i in enumerate(index):
        np.testing.assert_array_equal(batch.x[row, :lengths[row]].numpy(), fs.utterance(i))
        assert not batch.x[row, lengths[row]:].any()
    assert batch.y.tolist() == fs.labels[index].tolist()


def test_make_batch_crops_long_utterances_reproducibly():
    fs = toy_set(20, seed=1, lengths=(2, 30))
    index = np.arange(20)
    first = make_batch(fs, index, max_frames=5, rng=np.random.default_rng(7))
    again = make_batch(fs, index, max_frames=5, rng=np.random.default_rng(7))
    torch.testing.assert_close(first.x, again.x)
    assert first.x.shape[1] == 5
    assert first.mask.sum(1).tolist() == np.minimum(fs.lengths, 5).tolist()
    for row in range(20):
        n = int(first.mask[row].sum())
        window = first.x[row, :n].numpy()
        utt = fs.utterance(row)
        starts = [s for s in range(len(utt) - n + 1) if np.array_equal(utt[s:s + n], window)]
        assert starts, f"utterance {row}: the crop is not a contiguous window"


def test_float16_table_batches_as_float32():
    fs = FeatureSet.from_table(as_table(toy_set(6, seed=2, dtype="float16")))
    batch = make_batch(fs, np.arange(6))
    assert batch.x.dtype == torch.float32
    np.testing.assert_array_equal(batch.x[0, :fs.lengths[0]].numpy(), fs.utterance(0).astype(np.float32))


def test_fixed_length_batches_have_full_masks():
    fs = toy_set(10, seed=3, lengths=(8, 8))
    batch = next(train_batches(fs, 4, np.random.default_rng(0)))
    assert batch.x.shape == (4, 8, DIM) and bool(batch.mask.all())


def test_train_batches_cover_each_epoch_once():
    fs = toy_set(10, seed=4)
    batches = train_batches(fs, 4, np.random.default_rng(0))
    seen = [len(next(batches).y) for _ in range(3)]
    assert seen == [4, 4, 2]


def test_eval_batches_cover_every_utterance_once():
    fs = toy_set(11, seed=5)
    index = np.concatenate([i for i, _ in eval_batches(fs, 4)])
    assert sorted(index.tolist()) == list(range(11))


def test_training_learns_a_separable_set():
    train, dev = toy_set(48, seed=10), toy_set(24, seed=11)
    result = train_downstream(train, dev, quick_config(), progress=False)
    assert result.dev_uar >= 0.9
    assert result.best_step in (20, 40, 60) and result.steps == 60
    assert 0 < result.train_seconds <= result.total_seconds
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"
    test = toy_set(24, seed=12)
    predictions = predict(result.model, test, device="cpu")
    assert predictions.dtype == np.int64 and (predictions == test.labels).mean() >= 0.9
    assert predict_logits(result.model, test, device="cpu").shape == (24, 3)
    assert embed_set(result.model, test, device="cpu").shape == (24, 16)


def test_predictions_keep_utterance_order_despite_length_grouping():
    fs = toy_set(9, seed=6)
    model = MeanPoolLinear(DIM, 3, hidden=16)
    logits = predict_logits(model, fs, batch_size=2, device="cpu")
    for i in range(len(fs)):
        expected = model(torch.from_numpy(fs.utterance(i))[None].float())[0].detach().numpy()
        np.testing.assert_allclose(logits[i], expected, rtol=1e-5, atol=1e-6)


def test_training_is_deterministic_and_seed_dependent():
    train, dev = toy_set(32, seed=20, lengths=(3, 20)), toy_set(12, seed=21)
    config = quick_config(max_steps=20, max_frames=6)
    first = train_downstream(train, dev, config, progress=False).model.state_dict()
    second = train_downstream(train, dev, config, progress=False).model.state_dict()
    other = train_downstream(train, dev, quick_config(max_steps=20, max_frames=6, seed=4), progress=False)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert not torch.equal(first["projector.weight"], other.model.state_dict()["projector.weight"])


def test_snapshots_are_taken_at_the_requested_steps():
    train, dev = toy_set(16, seed=30), toy_set(8, seed=31)
    result = train_downstream(train, dev, quick_config(max_steps=12, eval_every=4), snapshot_steps=(1, 6, 12),
                              progress=False)
    assert len(result.snapshots) == 3
    assert all(t.device.type == "cpu" for snap in result.snapshots for t in snap.values())
    assert not torch.equal(result.snapshots[0]["classifier.weight"], result.snapshots[2]["classifier.weight"])
    with pytest.raises(ConfigError, match="snapshot_steps"):
        train_downstream(train, dev, quick_config(max_steps=12), snapshot_steps=(13,), progress=False)


def test_patience_stops_early():
    train, dev = toy_set(16, seed=40), toy_set(8, seed=41)
    # a vanishing lr never improves after the first evaluation: it stops after `patience` more evaluations.
    result = train_downstream(train, dev, quick_config(lr=1e-12, max_steps=100, eval_every=5, patience=2),
                              progress=False)
    assert result.steps == 15 and result.best_step == 5


def test_config_validation():
    with pytest.raises(ValidationError):
        DownstreamConfig(lr=0)
    with pytest.raises(ValidationError):
        DownstreamConfig(device="tpu-please")
    with pytest.raises(ValidationError):
        DownstreamConfig(batchsize=4)


def test_incompatible_splits_are_rejected():
    train = toy_set(8, seed=50)
    dev = FeatureSet(**{**train.__dict__, "label_names": ("a", "b", "c")})
    with pytest.raises(FeatureTableError, match="labels"):
        train_downstream(train, dev, quick_config(), progress=False)


def test_save_load_round_trip(tmp_path):
    fs = toy_set(10, seed=60)
    model = MeanPoolLinear(DIM, 3, hidden=16)
    directory = save_downstream(model, tmp_path / "ds", extra={"dev_uar": 0.5})
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_downstream(directory)
    np.testing.assert_array_equal(predict_logits(loaded, fs, device="cpu"), predict_logits(model, fs, device="cpu"))
    # Saving again over an existing directory replaces it and leaves no temp dirs behind.
    save_downstream(MeanPoolLinear(DIM, 3, hidden=8), directory)
    assert load_downstream(directory).hidden == 8
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(EmodistillError, match="config.json"):
        load_downstream(tmp_path / "nowhere")
    directory = save_downstream(MeanPoolLinear(DIM, 3, hidden=8), tmp_path / "ds")
    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(EmodistillError, match="model.safetensors"):
        load_downstream(directory)
    (directory / "model.safetensors").unlink()
    with pytest.raises(EmodistillError, match="model.safetensors"):
        load_downstream(directory)
    (directory / "config.json").write_text("{broken")
    with pytest.raises(ConfigError, match="config.json"):
        load_downstream(directory)


def test_nan_features_raise_training_diverged():
    train = toy_set(8, seed=70)
    train.frames[:] = np.nan
    with pytest.raises(TrainingDiverged, match="step 1"):
        train_downstream(train, toy_set(4, seed=71), quick_config(), progress=False)
