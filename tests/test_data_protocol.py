"""The data protocol of a run: a dev split held out by speaker, per-speaker normalisation; both in fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emodistill.corpora import Utterance, leave_one_session_out
from emodistill.errors import ConfigError, CorpusError, FeatureTableError
from emodistill.features.normalize import normalize_by_speaker, speaker_statistics
from emodistill.features.splits import DataConfig
from emodistill.features.store import dataset_fingerprint, load_splits, open_splits, read_table
from sweep_fixtures import make_corpus_dir, make_feature_dir

SPEAKER_DEV = DataConfig(dev_by="speaker")
NORMALISED = DataConfig(normalize="speaker")


def _records(speakers_per_session: int = 4, per_speaker: int = 10) -> list[Utterance]:
    return [Utterance(f"S{s}_{k}_{i:03d}", Path("/x.wav"), f"S{s}spk{k}", "F", s, "neu")
            for s in range(1, 6) for k in range(speakers_per_session) for i in range(per_speaker)]


def test_dev_by_speaker_holds_out_whole_speakers_near_the_dev_fraction():
    records = _records()
    train, dev, test = leave_one_session_out(records, 1, dev_fraction=0.2, dev_by="speaker")
    train_speakers, dev_speakers = {r.speaker for r in train}, {r.speaker for r in dev}
    assert not train_speakers & dev_speakers  # no speaker in both
    assert {r.session for r in test} == {1} and len(train) + len(dev) == 160
    assert len(dev) == 30  # 16 speakers of 10 utterances: 3 speakers (19 %) is nearest to 20 %
    assert sorted(r.utt_id for r in train + dev + test) == sorted(r.utt_id for r in records)
    again = leave_one_session_out(list(reversed(records)), 1, dev_fraction=0.2, dev_by="speaker")
    assert {r.speaker for r in again.dev} == dev_speakers  # a function of the record set and the seed
    other = leave_one_session_out(records, 1, dev_fraction=0.2, seed=1, dev_by="speaker")
    assert {r.speaker for r in other.dev} != dev_speakers
    # SUPERB's utterance split, for comparison, shares the training speakers.
    utterance = leave_one_session_out(records, 1, dev_fraction=0.2)
    assert {r.speaker for r in utterance.dev} & {r.speaker for r in utterance.train}


def test_dev_by_speaker_needs_speakers_and_two_of_them():
    with pytest.raises(CorpusError, match="needs at least two speakers outside the test session"):
        leave_one_session_out(_records(1, 10)[:20], 1, dev_by="speaker")  # sessions 1 and 2, one speaker each
    unnamed = [Utterance(r.utt_id, r.path, None, r.gender, r.session, r.label) for r in _records()]
    with pytest.raises(CorpusError, match="have no speaker"):
        leave_one_session_out(unnamed, 1, dev_by="speaker")
    with pytest.raises(ConfigError, match="dev_by"):
        leave_one_session_out(_records(), 1, dev_by="session")


def test_a_feature_directory_cut_by_speaker_and_its_fingerprints(tmp_path):
    features = make_corpus_dir(tmp_path / "f", sessions=5, per_session=12)  # two speakers per session
    utterance, speaker = load_splits(features, 2), load_splits(features, 2, SPEAKER_DEV)
    assert not set(speaker["train"].speakers) & set(speaker["dev"].speakers)
    assert set(utterance["train"].speakers) & set(utterance["dev"].speakers)
    assert speaker["test"].utt_ids == utterance["test"].utt_ids  # test is the session, whatever dev is
    assert len(speaker["train"]) + len(speaker["dev"]) == 48
    tables = open_splits(features, 2, SPEAKER_DEV)
    assert {s: t.column("utt_id").to_pylist() for s, t in tables.items()} == \
        {s: list(fs.utt_ids) for s, fs in speaker.items()}
    prints = {data: dataset_fingerprint(features, 2, data)
              for data in (DataConfig(), SPEAKER_DEV, NORMALISED, DataConfig(dev_by="speaker", normalize="speaker"))}
    assert len(set(prints.values())) == 4  # checkpoints and pool caches never mix protocols
    assert prints[DataConfig()] == dataset_fingerprint(features, 2)  # SUPERB's protocol: the fold's, as before


def test_the_python_api_takes_a_mapping_for_the_protocol_and_names_a_bad_one_or_a_bad_fold(tmp_path):
    features = make_corpus_dir(tmp_path / "f", sessions=5, per_session=12)
    by_mapping = load_splits(features, 2, {"dev_by": "speaker"})
    assert by_mapping["dev"].utt_ids == load_splits(features, 2, SPEAKER_DEV)["dev"].utt_ids
    with pytest.raises(ConfigError, match="data: dev_by: Input should be 'utterance' or 'speaker'"):
        load_splits(features, 2, {"dev_by": "session"})
    with pytest.raises(ConfigError, match="data: expected a DataConfig or a mapping of its settings, got str"):
        load_splits(features, 2, "speaker")
    for fold in (True, 2.0, "2"):  # True == 1 and 2.0 == 2 would pass a membership test
        with pytest.raises(ConfigError, match=f"fold must be a session number, got {fold!r}"):
            load_splits(features, fold)


def test_fixed_splits_cannot_be_cut_by_speaker(tmp_path):
    features = make_feature_dir(tmp_path / "fixed")
    with pytest.raises(ConfigError, match="fixed: its splits were fixed .* cannot be held out by speaker"):
        load_splits(features, data=SPEAKER_DEV)
    normalised = load_splits(features, data=NORMALISED)  # normalising them is fine
    assert normalised["train"].meta.normalization == "speaker"


def test_speaker_normalisation_round_trip(tmp_path):
    features = make_corpus_dir(tmp_path / "f", sessions=5, per_session=12)
    table = read_table(features / "corpus.arrow")
    stats = speaker_statistics([(table, "corpus")])
    normalised = normalize_by_speaker(table, stats)
    raw, norm = load_splits(features, 1), load_splits(features, 1, NORMALISED)
    assert norm["train"].meta.normalization == "speaker" and raw["train"].meta.normalization is None
    for split in ("train", "dev", "test"):
        assert norm[split].utt_ids == raw[split].utt_ids and np.array_equal(norm[split].lengths, raw[split].lengths)
        for i in range(len(raw[split])):
            mean, std = stats[raw[split].speakers[i]]
            np.testing.assert_allclose(norm[split].utterance(i) * std + mean, raw[split].utterance(i), atol=1e-5)
    # Every speaker has mean 0 and std 1 per dimension over all its frames (a test speaker with its own statistics).
    all_frames = norm["train"].frames  # the whole corpus under every split's view
    speaker_of_frame = np.repeat(np.array(table.column("speaker").to_pylist()), table.column("n_frames").to_numpy())
    for speaker in stats:
        frames = all_frames[speaker_of_frame == speaker].astype(np.float64)
        np.testing.assert_allclose(frames.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(frames.std(axis=0), 1, atol=1e-4)
    assert normalised.column("utt_id").equals(table.column("utt_id"))
    with pytest.raises(FeatureTableError, match="already normalised"):
        normalize_by_speaker(normalised)


def test_normalisation_needs_a_speaker_on_every_utterance(tmp_path):
    features = make_corpus_dir(tmp_path / "f")
    table = read_table(features / "corpus.arrow")
    index = table.schema.get_field_index("speaker")
    anonymous = table.set_column(index, "speaker", [[None] * table.num_rows]).cast(table.schema)
    with pytest.raises(FeatureTableError, match="corpus: 60 utterance\\(s\\) have no speaker"):
        normalize_by_speaker(anonymous, source="corpus")
