"""The generator artifact: save/load round trip, sampling counts and schema, bad inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from emodistill import generator
from emodistill.errors import ConfigError, EmodistillError
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import validate_table
from emodistill.features.store import read_table
from toy import LABELS, PRIOR, save_micro_generator


def save_micro(out_dir, normalization=None, metrics=None):
    return save_micro_generator(out_dir, dim=12, normalization=normalization, training_config={"steps": 1},
                                metrics=metrics or {"uar": 0.5})


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    module, path = save_micro(tmp_path / "gen")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = generator.load(path)
    for name, tensor in module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name
    assert loaded.label_names == LABELS
    np.testing.assert_allclose(loaded.class_prior, PRIOR)
    assert loaded.config["metrics"] == {"uar": 0.5}
    assert loaded.num_parameters == sum(p.numel() for p in module.parameters())
    assert loaded.size_bytes >= 4 * loaded.num_parameters
    assert not loaded.module.training


def test_sample_table_validates_and_is_deterministic(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    gen = generator.load(path)
    table = gen.sample(3, seed=7)
    meta = validate_table(table, "sample")
    assert meta.split == "synthetic" and meta.upstream == "fbank" and meta.dim == 12
    assert table.column("label").to_pylist() == [name for name in LABELS for _ in range(3)]
    assert table.column("utt_id").to_pylist()[:2] == ["syn_neu_000000", "syn_neu_000001"]
    assert set(table.column("speaker").to_pylist()) == {"synthetic"}
    assert table.column("gender").null_count == table.column("session").null_count == 12
    assert set(table.column("n_frames").to_pylist()) == {16}
    assert table.equals(gen.sample(3, seed=7))
    assert not table.column("features").equals(gen.sample(3, seed=8).column("features"))
    # Batching must not change the draw (only float rounding of the batched kernels).
    rebatched = gen.sample_features(3, seed=7, batch_size=5).frames
    np.testing.assert_allclose(rebatched, gen.sample_features(3, seed=7).frames, rtol=1e-4, atol=1e-5)


def test_streamed_sample_file_equals_the_in_memory_sample(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    gen = generator.load(path)
    out = gen.write_sample(tmp_path / "syn.arrow", 5, balanced=False, seed=3, batch_size=3)
    table = read_table(out)
    assert table.column("features").num_chunks == 7  # 20 utterances written 3 at a time
    assert table.equals(gen.sample(5, balanced=False, seed=3, batch_size=3))
    assert FeatureSet.from_table(table).class_counts().tolist() == [8, 6, 4, 2]
    empty = read_table(gen.write_sample(tmp_path / "none.arrow", 0))
    assert empty.num_rows == 0 and validate_table(empty, "empty").split == "synthetic"


def test_failed_streamed_sample_keeps_the_previous_file(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    gen = generator.load(path)
    out = gen.write_sample(tmp_path / "syn.arrow", 2)
    before = out.read_bytes()
    batches = []
    forward = gen.module.forward

    def fail_on_third_batch(z):
        batches.append(len(z))
        if len(batches) == 3:
            raise RuntimeError("out of memory")
        return forward(z)

    gen.module.forward = fail_on_third_batch
    with pytest.raises(RuntimeError, match="out of memory"):
        gen.write_sample(out, 4, batch_size=2)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["gen", "syn.arrow"]


def test_a_huge_sample_is_drawn_with_memory_bounded_by_the_batch(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    batches = generator.load(path).sample_batches({"neu": 3, "hap": 0, "sad": 10_000_000}, batch_size=4)
    tracemalloc.start()
    try:
        first, second = next(batches), next(batches)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # per-utterance label and index arrays of the 10 M utterances took 160 MB
    assert first.column("utt_id").to_pylist() == ["syn_neu_000000", "syn_neu_000001", "syn_neu_000002",
                                                  "syn_sad_000000"]
    assert second.column("utt_id").to_pylist() == [f"syn_sad_{i:06d}" for i in range(1, 5)]


def test_a_sample_the_disk_cannot_hold_is_refused_before_any_work(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    gen = generator.load(path)
    per_class = shutil.disk_usage(tmp_path).free // (16 * 12 * 4) + 1  # frames x dim x float32: one class overfills
    with pytest.raises(EmodistillError, match=r"big.arrow: needs about .* GiB, but .* has .* GiB free"):
        gen.write_sample(tmp_path / "big.arrow", per_class)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]


def test_a_sample_written_to_a_folder_is_refused(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    with pytest.raises(EmodistillError, match=r"gen: is a folder \(expected the name of the Arrow file to write\)"):
        generator.load(path).write_sample(path, 2)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]


def test_normalization_is_undone_at_sample_time(tmp_path):
    mean, std = np.full(12, 100.0, np.float32), np.full(12, 0.5, np.float32)
    _, plain = save_micro(tmp_path / "plain")
    _, scaled = save_micro(tmp_path / "scaled", normalization=(mean, std))
    a = generator.load(plain).sample_features(2).frames
    b = generator.load(scaled).sample_features(2).frames
    np.testing.assert_allclose(b, a * 0.5 + 100.0, rtol=1e-6)


def test_imbalanced_counts_follow_the_prior_and_sum_exactly(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    fs = generator.load(path).sample_features(5, balanced=False)
    assert fs.class_counts().tolist() == [8, 6, 4, 2]
    counts = generator.class_counts(0, LABELS, np.array(PRIOR), balanced=False, total=7)
    assert counts.sum() == 7 and counts.tolist() == [3, 2, 1, 1]
    assert generator.class_counts(1, LABELS, np.array(PRIOR), total=6).tolist() == [2, 2, 1, 1]


def test_ppc_mapping(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    fs = generator.load(path).sample_features({"hap": 2, "sad": 1})
    assert fs.class_counts().tolist() == [0, 2, 0, 1]
    assert fs.utt_ids == ("syn_hap_000000", "syn_hap_000001", "syn_sad_000000")


@pytest.mark.parametrize("ppc, kwargs, match", [
    ({"joy": 1}, {}, "joy"),
    ({"hap": -1}, {}, "hap"),
    (-2, {}, ">= 0"),
    (2.5, {}, "int"),
    (2, {"batch_size": 0}, "batch_size"),
    ({"hap": 1}, {"balanced": False}, "mapping"),
])
def test_bad_sample_requests(tmp_path, ppc, kwargs, match):
    _, path = save_micro(tmp_path / "gen")
    with pytest.raises(ConfigError, match=match):
        generator.load(path).sample(ppc, **kwargs)


def test_missing_files_are_named(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    (path / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="model.safetensors"):
        generator.load(path)
    with pytest.raises(ConfigError, match="config.json"):
        generator.load(tmp_path / "nowhere")


def test_invalid_model_section_is_one_line_naming_the_field(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    config = json.loads((path / "config.json").read_text())
    config["model"]["frames"] = 2
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"invalid 'model' section: model.frames: Input should be greater than or "
                                          r"equal to 8$"):
        generator.load(path)


def test_mismatched_weights_are_refused(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    config = json.loads((path / "config.json").read_text())
    config["model"]["g_channels"] = 16
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="do not match"):
        generator.load(path)


def test_a_huge_model_in_config_is_refused_before_allocating(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    config = json.loads((path / "config.json").read_text())
    config["model"]["frames"] = 100_000_000  # ~20 GB of weights, were the generator built before the check
    (path / "config.json").write_text(json.dumps(config))
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match=r"model.safetensors: weights do not match the model in config.json "
                                              r"\(2 tensor\(s\) differ; 'seed.project.bias' is of shape \[8\] in "
                                              r"the file, of shape \[50000000\] for the model\)"):
            generator.load(path)
        assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_refused_at_load(tmp_path, value):
    module, path = save_micro(tmp_path / "gen")
    weights = load_file(path / "model.safetensors")
    name = next(name for name, tensor in weights.items() if tensor.is_floating_point())
    weights[name].view(-1)[0] = value
    save_file(weights, path / "model.safetensors")
    with pytest.raises(ConfigError, match=rf"model.safetensors: weight '{re.escape(name)}' holds NaN or infinite"):
        generator.load(path)


def _drop_last(values: list) -> list:
    return values[:-1]


@pytest.mark.parametrize("key, change, problem", [
    ("normalization", lambda n: {**n, "mean": _drop_last(n["mean"])},
     "normalization.mean has 11 values, expected model.dim = 12 numbers in (-1e+06, 1e+06]"),
    ("normalization", lambda n: {**n, "std": [0.0] * 12},
     "normalization.std has 12 values, expected model.dim = 12 numbers in (0, 1e+06]"),
    ("label_names", _drop_last, "label_names ['neu', 'hap', 'ang'] are not model.n_classes = 4 distinct labels"),
    ("class_prior", _drop_last, "class_prior has 3 values, expected model.n_classes = 4 frequencies"),
    ("feature_meta", lambda m: {**m, "labels": ["hap", "neu", "ang", "sad"]},
     "feature_meta {'labels': ['hap', 'neu', 'ang', 'sad'], 'dim': 12} differs from label_names"),
    ("feature_meta", lambda m: {**m, "dim": 80},
     "feature_meta {'labels': ['neu', 'hap', 'ang', 'sad'], 'dim': 80} differs from label_names "
     "['neu', 'hap', 'ang', 'sad'] or model.dim = 12"),
])
def test_stored_fields_that_disagree_with_the_model_are_refused_at_load(tmp_path, key, change, problem):
    _, path = save_micro(tmp_path / "gen", normalization=(np.zeros(12), np.ones(12)))
    config = json.loads((path / "config.json").read_text())
    config[key] = change(config[key])
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as refused:
        generator.load(path)
    message = str(refused.value)
    assert message.startswith(f"{path / 'config.json'}: ") and problem in message and "\n" not in message


def test_overwrite_replaces_the_artifact_whole(tmp_path):
    save_micro(tmp_path / "gen", metrics={"round": 1})
    _, path = save_micro(tmp_path / "gen", metrics={"round": 2})
    assert generator.load(path).config["metrics"] == {"round": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]  # no staging or old copies left behind


def test_sample_features_are_the_sampled_table_without_arrow(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    gen = generator.load(path)
    direct = gen.sample_features(3, balanced=False, seed=4, batch_size=5)
    via_table = FeatureSet.from_table(gen.sample(3, balanced=False, seed=4, batch_size=5))
    np.testing.assert_array_equal(direct.frames, via_table.frames)
    np.testing.assert_array_equal(direct.starts, via_table.starts)
    np.testing.assert_array_equal(direct.labels, via_table.labels)
    assert direct.utt_ids == via_table.utt_ids and direct.speakers == via_table.speakers
    assert direct.label_names == via_table.label_names and direct.meta.split == "synthetic"


def test_samples_that_cannot_fit_in_memory_are_refused_before_generating(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    gen = generator.load(path)
    with pytest.raises(EmodistillError, match=r"sample: 4000000000000 utterances of 16 x 12 frames: needs about "
                                              r"\d+\.\d GiB of memory, more than the"):
        gen.sample_features(10**12)
    with pytest.raises(EmodistillError, match=r"sample: a batch of batch_size 1000000000000: 1000000000000 utt"):
        next(gen.sample_batches(10**12, batch_size=10**12))


def test_a_sample_ended_by_sigterm_leaves_the_previous_file_and_no_temporary_one(tmp_path):
    _, path = save_micro(tmp_path / "gen")
    out = generator.load(path).write_sample(tmp_path / "syn.arrow", 2)
    before = out.read_bytes()
    script = ("import sys; from emodistill import generator; "
              "generator.load(sys.argv[1]).write_sample(sys.argv[2], 20000, batch_size=1)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(out)], stderr=subprocess.PIPE, text=True)
    try:
        while not list(tmp_path.glob(".syn.arrow.*.tmp")):  # the new sample is being written
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.terminate()
        assert proc.wait(timeout=60) == 143  # as a process ended by SIGTERM, after its clean-up
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["gen", "syn.arrow"]
