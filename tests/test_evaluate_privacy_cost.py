"""The speaker-ID probe separates speaker-encoding embeddings from uninformative ones; cost arithmetic."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from emodistill.errors import ConfigError, CorpusError
from emodistill.evaluate import privacy_probe, speaker_probe, train_reference
from emodistill.evaluate.cost import audio_bytes, directory_bytes, reduction_pct, size_report, time_report
from evaluate_helpers import quick_downstream, toy_splits

SPEAKERS = np.repeat([f"spk{i}" for i in range(4)], 30)


def test_probe_finds_speakers_only_when_embeddings_carry_them():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (4, 16))
    codes = np.repeat(np.arange(4), 30)
    informative = centres[codes] + rng.normal(0, 1, (120, 16))
    assert speaker_probe(informative, SPEAKERS, seed=0).accuracy > 0.9
    blind = speaker_probe(rng.normal(0, 1, (120, 16)), SPEAKERS, seed=0)
    assert blind.accuracy < 0.5 and blind.chance == pytest.approx(0.25)
    assert (blind.speakers, blind.train_utterances, blind.test_utterances) == (4, 84, 36)


def test_probe_rejects_a_single_speaker():
    with pytest.raises(ConfigError, match="two speakers"):
        speaker_probe(np.zeros((10, 3)), ["a"] * 9 + ["b"])


def test_privacy_probe_reads_downstream_embeddings():
    splits = toy_splits()
    reference = train_reference(splits, quick_downstream(max_steps=2), progress=False)
    probes = privacy_probe({"real data": reference.model}, splits["train"], device="cpu")
    assert set(probes) == {"real data"} and 0.0 <= probes["real data"].accuracy <= 1.0
    assert probes["real data"].speakers == 4


def test_reductions_and_reports():
    assert reduction_pct(100, 5) == pytest.approx(95.0)
    assert reduction_pct(90 * 60, 5 * 60) == pytest.approx(100 * (1 - 5 / 90))
    size = size_report(feature_bytes=400, generator_bytes={"gan": 20}, audio=1000)
    assert size["features_reduction_vs_audio_pct"] == pytest.approx(60.0)
    assert size["generators"]["gan"] == {"bytes": 20, "reduction_vs_features_pct": pytest.approx(95.0),
                                         "reduction_vs_audio_pct": pytest.approx(98.0)}
    assert "reduction_vs_audio_pct" not in size_report(400, {"gan": 20})["generators"]["gan"]
    time = time_report(200.0, {"gan": {"ppc100": 10.0}})
    assert time["sources"]["gan"]["ppc100"] == {"seconds": 10.0, "reduction_pct": pytest.approx(95.0)}
    with pytest.raises(ConfigError, match="positive"):
        reduction_pct(0, 1)


def test_audio_bytes_from_a_manifest_or_a_folder(tmp_path):
    wavs = {}
    for name, size in (("a", 100), ("b", 250), ("c", 7)):
        wavs[name] = tmp_path / "wav" / f"{name}.wav"
        wavs[name].parent.mkdir(exist_ok=True)
        wavs[name].write_bytes(b"\0" * size)
    with open(tmp_path / "corpus.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker", "utt_id"])
        for name in wavs:
            writer.writerow([f"wav/{name}.wav", "neu", "s1", name])
    assert audio_bytes(tmp_path / "corpus.csv") == 357
    assert audio_bytes(tmp_path, utt_ids=["a", "b"]) == 350  # a folder holding corpus.csv
    assert audio_bytes(tmp_path / "wav") == 357  # no manifest: every .wav under the folder
    assert directory_bytes(tmp_path / "wav") == 357
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no corpus.csv and no .wav"):
        audio_bytes(tmp_path / "empty")
    with pytest.raises(CorpusError, match="neither"):
        audio_bytes(tmp_path / "missing.csv")

