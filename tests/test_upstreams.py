"""Upstreams: the fbank default and a tiny random HuBERT loaded through the real Hugging Face code."""

from __future__ import annotations

import huggingface_hub.constants
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from emodistill.cli.main import main
from emodistill.corpora.folds import leave_one_session_out
from emodistill.corpora.records import Utterance
from emodistill.errors import ConfigError
from emodistill.features.extract import extract_features
from emodistill.features.store import load_splits
from emodistill.features.upstream import make_upstream

HIDDEN, LAYERS = 32, 2


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Any attempt to reach the Hub fails (the constant is read at call time; the variable only at import)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory):
    """A random 2-layer HuBERT (hidden 32) and its feature extractor, saved like a downloaded model."""
    torch.manual_seed(0)
    config = HubertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(32,) * 7, feat_extract_norm="layer", num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=2)
    directory = tmp_path_factory.mktemp("tiny-hubert")
    HubertModel(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def hf(tiny_hubert):
    return make_upstream("hf", model=str(tiny_hubert), device="cpu")


def noise(seconds: float, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sample_rate))).astype(np.float32)


def test_fbank_upstream():
    fbank = make_upstream("fbank")
    frames = fbank(noise(1.0))
    assert frames.shape == (1 + (16000 - 400) // 160, 80) and frames.dtype == np.float32
    assert fbank.describe()["version"] == fbank.version and fbank.frame_rate == 100.0
    assert [f.shape for f in fbank.batch([noise(0.5), noise(0.01)])] == [(48, 80), (1, 80)]
    assert make_upstream("fbank", n_mels=40)(noise(0.5)).shape == (48, 40)


def test_registry_errors():
    with pytest.raises(ConfigError, match=r"upstream 'mfcc' is unknown; expected one of \['fbank', 'hf'\]"):
        make_upstream("mfcc")
    with pytest.raises(ConfigError, match="upstream 'fbank': bad options"):
        make_upstream("fbank", model="x")


def test_hf_shapes_and_metadata(hf, tiny_hubert):
    assert (hf.dim, hf.layer, hf.sample_rate, hf.frame_rate) == (HIDDEN, LAYERS, 16000, 50.0)
    assert hf.describe()["model"] == str(tiny_hubert) and hf.version.startswith("hubert/transformers-")
    for seconds, expected in [(1.0, 49), (0.3, 14), (0.001, 1)]:
        frames = hf(noise(seconds))
        assert frames.shape == (expected, HIDDEN) and frames.dtype == np.float32


def test_hf_last_layer_is_the_model_output(hf):
    wav = noise(0.5)
    inputs = hf.extractor(wav, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        expected = hf.model(**inputs).last_hidden_state[0].numpy()
    np.testing.assert_allclose(hf(wav), expected, atol=1e-6)


def test_hf_layer_selection(tiny_hubert, hf):
    wav = noise(0.4)
    by_layer = [make_upstream("hf", model=str(tiny_hubert), layer=layer, device="cpu")(wav) for layer in (0, "1")]
    assert not np.allclose(by_layer[0], by_layer[1]) and not np.allclose(by_layer[1], hf(wav))
    for layer in (3, -1, "middle"):
        with pytest.raises(ConfigError, match=r"layer .* is out of range: expected 'last' or an integer in \[0, 2\]"):
            make_upstream("hf", model=str(tiny_hubert), layer=layer)


def test_hf_batch_matches_one_by_one(hf):
    wavs = [noise(s, seed=i) for i, s in enumerate((0.6, 0.25, 1.0, 0.02))]
    batched = hf.batch(wavs)
    assert [len(f) for f in batched] == [29, 12, 49, 1]
    for wav, frames in zip(wavs, batched):
        np.testing.assert_allclose(frames, hf(wav), atol=1e-4)


def test_hf_bad_model_dir(tmp_path):
    with pytest.raises(ConfigError, match=f"--model {tmp_path}: not a loadable Hugging Face speech model"):
        make_upstream("hf", model=str(tmp_path))
    with pytest.raises(ConfigError, match="--model facebook/hubert-base-ls960: not a loadable"):
        make_upstream("hf", model="facebook/hubert-base-ls960")  # a hub name, offline and not cached


def test_hf_extraction_end_to_end(hf, tmp_path):
    splits = {}
    for i, split in enumerate(("train", "dev", "test")):
        path = tmp_path / f"{split}.wav"
        sf.write(path, noise(0.3 + 0.1 * i, seed=i, sample_rate=8000), 8000)  # resampled to 16 kHz on reading
        splits[split] = [Utterance(split, path, speaker="s1", gender="F", session=1, label="hap")]
    index = extract_features(splits, hf, tmp_path / "features", "toy", dtype="float16", progress=False)
    sets = load_splits(tmp_path / "features")
    assert [sets[s].frames.shape for s in ("train", "dev", "test")] == [(14, HIDDEN), (19, HIDDEN), (24, HIDDEN)]
    assert sets["train"].frames.dtype == np.float16
    assert index["meta"]["upstream"] == "hf" and index["meta"]["layer"] == LAYERS
    assert index["meta"]["frame_rate"] == 50.0 and index["meta"]["upstream_config"]["hidden_size"] == HIDDEN


def test_hf_fold_1_of_the_corpus_table_is_the_fold_1_tables_extracted_apart(hf, tmp_path):
    """An HF model's frames depend a little on the batch (padding): the whole-corpus extraction batches fold 1's
    splits apart, as their own tables were, so fold 1's frames are exactly those of the old layout."""
    records = []
    for i in range(12):
        path = tmp_path / f"u{i:02d}.wav"
        sf.write(path, noise(0.2 + 0.05 * i, seed=i), 16000)
        records.append(Utterance(f"u{i:02d}", path, speaker="s", gender="F", session=1 + i % 3, label="hap"))
    extract_features(records, hf, tmp_path / "corpus", "toy", labels=["hap"], progress=False)
    extract_features(leave_one_session_out(records, 1)._asdict(), hf, tmp_path / "fixed", "toy", labels=["hap"],
                     progress=False)
    fold, fixed = load_splits(tmp_path / "corpus", 1), load_splits(tmp_path / "fixed")
    for split in ("train", "dev", "test"):
        assert fold[split].utt_ids == fixed[split].utt_ids
        for i in range(len(fixed[split])):
            np.testing.assert_array_equal(fold[split].utterance(i), fixed[split].utterance(i))


def test_cli_hf_errors(tiny_hubert, tmp_path, capsys):
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", noise(0.3), 16000)
    (tmp_path / "corpus.csv").write_text("path,label,speaker,session\na.wav,neu,s1,1\nb.wav,sad,s2,2\n")
    base = ["features", "extract", "--corpus", str(tmp_path), "--out", str(tmp_path / "out"), "--upstream", "hf"]
    cases = [([], "--upstream hf needs --model"),
             (["--model", str(tmp_path / "empty")], "empty: not a loadable Hugging Face speech model"),
             (["--model", str(tiny_hubert), "--layer", "7"], "layer 7 is out of range")]
    (tmp_path / "empty").mkdir()
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_a_model_with_only_pickled_weights_is_refused_unless_allowed(tiny_hubert, tmp_path):
    pickled = tmp_path / "pickled-hubert"  # as older checkpoints on the Hub are (transformers 5 saves safetensors)
    model = HubertModel.from_pretrained(tiny_hubert)
    model.save_pretrained(pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    Wav2Vec2FeatureExtractor.from_pretrained(tiny_hubert).save_pretrained(pickled)
    assert (pickled / "pytorch_model.bin").is_file() and not list(pickled.glob("*.safetensors"))
    with pytest.raises(ConfigError, match=r"only a pickle-based checkpoint \(pytorch_model.bin\).*--allow-pickle"):
        make_upstream("hf", model=str(pickled), device="cpu")
    assert make_upstream("hf", model=str(pickled), device="cpu", allow_pickle=True)(noise(0.5)).shape[1] == HIDDEN
