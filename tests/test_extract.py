"""Extraction end to end on tiny wav files, its error paths, and the `emodistill features` commands."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emodistill.cli.main import main
from emodistill.corpora.audio import read_audio
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.records import Utterance
from emodistill.corpora.folds import leave_one_session_out
from emodistill.errors import ConfigError, CorpusError, EmodistillError, FeatureTableError
from emodistill.features.extract import extract_features
from emodistill.features.schema import validate_table
from emodistill.features.store import (build_table, dataset_fingerprint, fingerprint, load_splits, open_splits,
                                      read_index, read_table)
from emodistill.features.upstream import make_upstream

# (file, label, speaker, session, gender, seconds, sample rate): sessions 1-3, so fold 1 tests on session 1.
CORPUS = [
    ("s1a.wav", "neu", "Ses01F", 1, "F", 0.30, 16000),
    ("s1b.wav", "ang", "Ses01M", 1, "M", 0.25, 16000),
    ("s2a.wav", "hap", "Ses02F", 2, "F", 0.50, 22050),
    ("s2b.wav", "sad", "Ses02M", 2, "M", 0.20, 8000),
    ("s3a.wav", "neu", "Ses03F", 3, "F", 0.40, 16000),
    ("s3b.wav", "hap", "Ses03M", 3, "M", 0.35, 16000),
]


def fbank_frames(seconds: float) -> int:
    """Kaldi framing at 16 kHz: 400-sample windows every 160 samples."""
    return 1 + (round(seconds * 16000) - 400) // 160


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A corpus directory with tiny wav files and its corpus.csv manifest."""
    directory = tmp_path / "toy"
    directory.mkdir()
    rows = ["path,label,speaker,session,gender"]
    for i, (name, label, speaker, session, gender, seconds, rate) in enumerate(CORPUS):
        t = np.arange(int(seconds * rate)) / rate
        sf.write(directory / name, (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), rate)
        rows.append(f"{name},{label},{speaker},{session},{gender}")
    (directory / "corpus.csv").write_text("\n".join(rows) + "\n")
    return directory


def records(corpus: Path) -> list[Utterance]:
    return load_manifest(corpus / "corpus.csv", strict=True)


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_extract_end_to_end(corpus, tmp_path):
    out = tmp_path / "features"
    index = extract_features(records(corpus), make_upstream("fbank"), out, "toy", dev_fraction=0.25, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["corpus.arrow", "features.json"]  # the corpus, once
    sets = load_splits(out)  # fold 1
    assert sorted(sets["test"].utt_ids) == ["s1a", "s1b"]
    assert len(sets["train"]) == 3 and len(sets["dev"]) == 1
    seconds = {c[0].removesuffix(".wav"): c[5] for c in CORPUS}
    for fs in sets.values():
        assert [fbank_frames(seconds[u]) for u in fs.utt_ids] == list(fs.lengths)
        assert fs.meta.corpus == "toy" and fs.meta.dim == 80 and fs.meta.frame_rate == 100.0
    corpus_entry = index["tables"]["corpus"]
    assert corpus_entry["counts"] == {"neu": 2, "hap": 2, "ang": 1, "sad": 1} and corpus_entry["utterances"] == 6
    assert corpus_entry["seconds"] == pytest.approx(sum(c[5] for c in CORPUS))
    assert corpus_entry["frames"] == sum(fbank_frames(c[5]) for c in CORPUS)
    assert index["folds"] == {"sessions": {"1": 2, "2": 2, "3": 2}, "dev_fraction": 0.25, "seed": 0}
    assert json.loads((out / "features.json").read_text()) == index
    again = extract_features(records(corpus), make_upstream("fbank"), tmp_path / "again", "toy", dev_fraction=0.25,
                             progress=False)
    assert again["fingerprint"] == index["fingerprint"]
    # Each fold has its own fingerprint (checkpoints and pool caches are keyed by it); fold 1 is the default.
    fingerprints = [dataset_fingerprint(out, fold) for fold in (1, 2, 3)]
    assert len(set(fingerprints)) == 3 and dataset_fingerprint(out) == fingerprints[0]


def test_extraction_caps_onednn_s_shape_cache_unless_the_user_set_it(corpus, tmp_path, monkeypatch):
    name = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
    upstream, seen = make_upstream("fbank"), []
    batch = upstream.batch
    monkeypatch.setattr(upstream, "batch", lambda wavs: (seen.append(os.environ.get(name)), batch(wavs))[1])
    monkeypatch.setenv(name, "")  # recorded, so that the test leaves it as it was
    monkeypatch.delenv(name)
    extract_features(records(corpus), upstream, tmp_path / "a", "toy", progress=False)
    assert set(seen) == {"4"} and name not in os.environ  # a primitive per batch length; Ray workers keep the default
    monkeypatch.setenv(name, "64")
    seen.clear()
    extract_features(records(corpus), upstream, tmp_path / "b", "toy", progress=False)
    assert set(seen) == {"64"} and os.environ[name] == "64"


@pytest.mark.parametrize("dev_fraction, seed", [(0.25, 0), (0.5, 3)])
def test_every_fold_is_leave_one_session_out_of_the_records(corpus, tmp_path, dev_fraction, seed):
    """A fold chosen at load has the members and the row order leave_one_session_out gives the records (so fold 1
    is the split extraction used to write), and its splits are views of the one table: no frame is copied."""
    out = tmp_path / "features"
    recs = records(corpus)
    extract_features(recs, make_upstream("fbank"), out, "toy", dev_fraction=dev_fraction, seed=seed, progress=False)
    total = sum(fbank_frames(c[5]) for c in CORPUS)
    for fold in (1, 2, 3):
        expected = leave_one_session_out(recs, fold, dev_fraction, seed)
        sets, tables = load_splits(out, fold), open_splits(out, fold)
        for split in ("train", "dev", "test"):
            ids = [r.utt_id for r in getattr(expected, split)]
            assert list(sets[split].utt_ids) == ids == tables[split].column("utt_id").to_pylist(), (fold, split)
            # One memory map of the whole table under all three splits, not a copy of the split's frames.
            assert sets[split].frames is sets["train"].frames and len(sets[split].frames) == total
            assert not sets[split].frames.flags.owndata
            for i, table_frames in enumerate(tables[split].column("features").to_pylist()):
                np.testing.assert_array_equal(sets[split].utterance(i), np.asarray(table_frames, np.float32))


def test_fold_choice_errors_are_one_line(corpus, tmp_path):
    out = tmp_path / "features"
    extract_features(records(corpus), make_upstream("fbank"), out, "toy", progress=False)
    with pytest.raises(ConfigError, match=r"features: no fold 4 \(fold K tests on session K; sessions: \[1, 2, 3\]\)"):
        load_splits(out, 4)
    fixed = tmp_path / "fixed"
    recs = records(corpus)
    extract_features({"train": recs[:3], "dev": recs[3:4], "test": recs[4:]}, make_upstream("fbank"), fixed, "toy",
                     progress=False)
    assert {s: len(fs) for s, fs in load_splits(fixed).items()} == {"train": 3, "dev": 1, "test": 2}
    assert dataset_fingerprint(fixed) == json.loads((fixed / "features.json").read_text())["fingerprint"]
    with pytest.raises(ConfigError, match="fixed: its splits were fixed when it was extracted .* so it has no fold 2"):
        load_splits(fixed, 2)


def test_a_corpus_whose_folds_lack_a_split_fails_before_extraction(corpus, tmp_path):
    recs = [r for r in records(corpus) if r.session != 3]
    with pytest.raises(CorpusError, match="fold 1 \\(test session 1\\) has no dev utterances"):
        extract_features(recs, make_upstream("fbank"), tmp_path / "f", "toy", dev_fraction=0.0, progress=False)
    assert not (tmp_path / "f").exists()


def test_extract_predefined_splits_and_row_order(corpus, tmp_path):
    recs = records(corpus)
    splits = {"train": recs[::-1][:4], "dev": recs[4:5], "test": recs[5:]}
    extract_features(splits, make_upstream("fbank"), tmp_path / "f", "toy", dtype="float16", progress=False)
    sets = load_splits(tmp_path / "f")
    assert sets["train"].utt_ids == tuple(r.utt_id for r in splits["train"])
    assert sets["train"].frames.dtype == np.float16


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), "audio file not found"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "audio file is empty"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage"), "not a readable audio file"),
])
def test_bad_audio_aborts_without_touching_written_tables(corpus, tmp_path, damage, message):
    out = tmp_path / "features"
    extract_features(records(corpus), make_upstream("fbank"), out, "toy", progress=False)
    before = dataset_fingerprint(out)
    recs = records(corpus)
    damage(recs[0].path)
    splits = {"train": recs[:1], "dev": recs[1:2], "test": recs[2:]}
    with pytest.raises(CorpusError, match=f"{recs[0].path}: {message}"):
        extract_features(splits, make_upstream("fbank"), out, "toy", progress=False)
    assert {s: t.num_rows for s, t in open_splits(out).items()} == {"train": 3, "dev": 1, "test": 2}
    assert dataset_fingerprint(out) == before


def test_failure_in_a_later_split_leaves_the_whole_old_folder_intact(corpus, tmp_path):
    out = tmp_path / "features"
    extract_features(records(corpus), make_upstream("fbank"), out, "toy", progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    recs = records(corpus)
    recs[-1].path.write_bytes(b"RIFF\x00\x00garbage")
    # train and dev differ from the old ones and are extracted first; the bad wav is in the test split.
    splits = {"train": recs[:2], "dev": recs[2:4], "test": recs[4:]}
    with pytest.raises(CorpusError, match=f"{recs[-1].path}: not a readable audio file"):
        extract_features(splits, make_upstream("fbank"), out, "toy", dtype="float16", progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_extract_refuses_a_folder_holding_other_files(corpus, tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FeatureTableError, match=r"work: holds files other than a feature directory's \(notes.txt\)"):
        extract_features(records(corpus), make_upstream("fbank"), out, "toy", progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_truncated_wav_is_extracted_with_a_warning_naming_it(corpus, tmp_path, caplog):
    recs = records(corpus)
    recs[0].path.write_bytes(recs[0].path.read_bytes()[:44 + 1000])  # the header still promises 0.3 s
    with caplog.at_level(logging.WARNING):
        extract_features(recs, make_upstream("fbank"), tmp_path / "f", "toy", progress=False)
    assert f"{recs[0].path}: truncated audio file: its header declares 9600 bytes of audio data, the file holds 1000" \
        in caplog.text


def test_unknown_label_fails_before_extraction(corpus, tmp_path):
    recs = records(corpus)
    odd = Utterance("odd", recs[0].path, speaker="x", gender=None, session=2, label="fru")
    with pytest.raises(CorpusError, match="label 'fru' of odd is not in the label set"):
        extract_features(recs + [odd], make_upstream("fbank"), tmp_path / "f", "toy", progress=False)
    assert not (tmp_path / "f").exists()


def test_cli_extract_and_info(corpus, tmp_path, capsys):
    out = tmp_path / "features"
    code, stdout, _ = run(["features", "extract", "--corpus", str(corpus), "--out", str(out),
                           "--dtype", "float16", "--dev-fraction", "0.25", "--seed", "3"], capsys)
    assert code == 0
    fingerprint = read_index(out)["fingerprint"]  # the directory's; each fold's differs (dataset_fingerprint)
    assert f"dataset fingerprint {fingerprint}" in stdout and "corpus toy, upstream fbank" in stdout
    assert "6 utts (neu=2 hap=2 ang=1 sad=1)" in stdout and "float16" in stdout
    assert "folds 1, 2, 3 (utterances per session 1: 2, 2: 2, 3: 2): fold K tests on session K, the others cut " \
           "0.75/0.25 into train/dev (seed 3)" in stdout
    code, info, _ = run(["features", "info", str(out)], capsys)
    assert code == 0 and info == stdout
    code, _, _ = run(["features", "extract", "--corpus", str(corpus / "corpus.csv"), "--out", str(out),
                      "--corpus-name", "named"], capsys)
    assert code == 0 and load_splits(out)["test"].meta.corpus == "named"
    assert sorted(load_splits(out, fold=2)["test"].utt_ids) == ["s2a", "s2b"]


def test_cli_refuses_a_split_column_without_dev_rows(corpus, tmp_path, capsys):
    rows = (corpus / "corpus.csv").read_text().splitlines()
    splits = ["test", "test", "train", "train", "train", "train"]
    (corpus / "corpus.csv").write_text("\n".join([rows[0] + ",split"] + [f"{row},{split}" for row, split in
                                                                         zip(rows[1:], splits)]) + "\n")
    out = tmp_path / "features"
    code, _, err = run(["features", "extract", "--corpus", str(corpus), "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "the dev split has no utterances, but distill and sweeps choose their checkpoints on it " \
           "(a manifest's 'split' column needs dev rows)" in err
    assert not out.exists()


def test_cli_errors(corpus, tmp_path, capsys):
    def fails(args: list[str], message: str) -> None:
        code, _, err = run(args, capsys)
        assert code == 2, args
        assert message in err and err.count("\n") == 1 and err.startswith("emodistill features: error:"), err

    bad_label = tmp_path / "labels.csv"
    bad_label.write_text(f"path,label,speaker,session\n{corpus / 's1a.wav'},fru,Ses01F,1\n")
    extract = ["features", "extract", "--out", str(tmp_path / "out"), "--corpus"]
    fails(extract + [str(tmp_path / "nope")], "nope: corpus manifest not found")
    fails(extract + [str(tmp_path)], "corpus.csv: corpus manifest not found")
    fails(extract + [str(bad_label)], "unknown label 'fru'")
    fails(extract + [str(corpus), "--layer", "3"],
          "--model, --layer, --batch-size and --allow-pickle apply to --upstream hf only")
    fails(["features", "info", str(tmp_path / "none")], "none: feature directory not found")
    fails(["features", "info", str(corpus)], "features.json: index not found")
    (corpus / "s3b.wav").unlink()
    fails(extract + [str(corpus)], "have no audio file (s3b)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_float_wav_with_non_finite_samples_is_refused_naming_it(tmp_path, value):
    wav = np.zeros((16000, 2), dtype=np.float32)
    wav[8000, 1] = value
    sf.write(tmp_path / "bad.wav", wav, 16000, subtype="FLOAT")
    with pytest.raises(CorpusError, match=r"bad.wav: 1 of 16000 samples are NaN or infinite \(the first at 0.500 s\)"):
        read_audio(tmp_path / "bad.wav", 16000)


def test_a_wav_whose_rate_would_resample_beyond_memory_is_refused_before_reading(tmp_path):
    sf.write(tmp_path / "slow.wav", np.zeros(2_000_000, np.float32), 1, subtype="FLOAT")  # 1 Hz: x16000 at 16 kHz
    with pytest.raises(EmodistillError, match=r"slow.wav: 2000000 samples of 1 channel\(s\) at 1 Hz, read at "
                                              r"16000 Hz: needs about 715.3 GiB of memory"):
        read_audio(tmp_path / "slow.wav", 16000)


def test_the_streamed_table_is_the_one_built_in_memory_in_one_record_batch(corpus, tmp_path):
    rows = records(corpus)
    upstream = make_upstream("fbank")
    out = tmp_path / "features"
    extract_features(rows, upstream, out, "toy", dev_fraction=0.25, progress=False)
    table = read_table(out / "corpus.arrow")
    # Extracted in batches of similar length, spilled to disk, laid out again in record order.
    expected = build_table([(r, upstream.batch([read_audio(r.path, upstream.sample_rate)])[0]) for r in rows],
                           validate_table(table, "corpus.arrow"))
    assert table.equals(expected) and fingerprint(table) == fingerprint(expected)
    assert table.column("features").num_chunks == 1  # one record batch: reading it stays zero-copy
    assert sorted(p.name for p in out.iterdir()) == ["corpus.arrow", "features.json"]  # no scratch file is left
