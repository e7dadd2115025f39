"""CSV manifests: reading, validation errors naming line and column, atomic writing, splits, and the CLI."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emodistill.cli.main import main
from emodistill.corpora import Utterance, load_manifest, manifest_splits, read_manifest, write_manifest
from emodistill.errors import CorpusError

HEADER = "path,label,speaker,session,gender,duration,split\n"


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """Three 0.5 s wavs under tmp_path/audio."""
    (tmp_path / "audio").mkdir()
    for name in ("a", "b", "c"):
        sf.write(tmp_path / "audio" / f"{name}.wav", np.zeros(8000, np.float32), 16000)
    return tmp_path


def _write(folder: Path, text: str, name: str = "m.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_load_resolves_paths_and_parses_columns(corpus_dir):
    csv_path = _write(corpus_dir, HEADER + f"audio/a.wav,neu,spk1,1,F,0.5,train\n"
                                           f"{corpus_dir}/audio/b.wav,sad,spk2,,,,test\n")
    a, b = load_manifest(csv_path)
    assert a == Utterance("a", corpus_dir / "audio/a.wav", "spk1", "F", 1, "neu", 0.5)
    assert b == Utterance("b", corpus_dir / "audio/b.wav", "spk2", None, None, "sad", None)


def test_minimal_columns_and_custom_labels(corpus_dir):
    csv_path = _write(corpus_dir, "utt_id,path,label,speaker\nu1,audio/a.wav,joy,s\n")
    with pytest.raises(CorpusError, match=r"m.csv:2: column 'label': unknown label 'joy'"):
        load_manifest(csv_path)
    (record,) = load_manifest(csv_path, labels=("joy", "calm"))
    assert (record.utt_id, record.label, record.session, record.gender) == ("u1", "joy", None, None)


@pytest.mark.parametrize("row, problem", [
    ("audio/a.wav,neu,s,one,F,,", r"m.csv:2: column 'session': 'one' is not an integer"),
    ("audio/a.wav,neu,s,0,F,,", r"m.csv:2: column 'session': '0' must be positive"),
    ("audio/a.wav,neu,s,1000000000,F,,", r"column 'session': '1000000000' must be positive, at most 999999999"),
    ("audio/a.wav,neu,s,1,F,inf,", r"m.csv:2: column 'duration': 'inf' must be positive, at most 86400.0"),
    ("audio/a.wav,neu,s,1,F,nan,", r"m.csv:2: column 'duration': 'nan' must be positive"),
    ("audio/a.wav,neu,s,1,X,,", r"m.csv:2: column 'gender': 'X' is not F, M or empty"),
    ("audio/a.wav,neu,s,1,F,long,", r"m.csv:2: column 'duration': 'long' is not a number"),
    ("audio/a.wav,neu,,1,F,,", r"m.csv:2: column 'speaker': empty"),
    ("audio/a.wav,neu,s,1,F,,val", r"m.csv:2: column 'split': 'val' is not one of train, dev, test"),
    ("audio/a.wav,neu,s,1,F,,,extra", r"m.csv:2: row has more cells than the header"),
])
def test_bad_cells_name_line_and_column(corpus_dir, row, problem):
    with pytest.raises(CorpusError, match=problem):
        load_manifest(_write(corpus_dir, HEADER + row + "\n"))


def test_bad_headers_and_duplicates(corpus_dir):
    with pytest.raises(CorpusError, match="missing required column.* speaker"):
        load_manifest(_write(corpus_dir, "path,label\naudio/a.wav,neu\n"))
    with pytest.raises(CorpusError, match="column.s. 'label' appear more than once in the header"):
        load_manifest(_write(corpus_dir, "path,label,speaker,label\naudio/a.wav,neu,s,ang\n"))
    with pytest.raises(CorpusError, match="unknown column.* sesion"):
        load_manifest(_write(corpus_dir, "path,label,speaker,sesion\naudio/a.wav,neu,s,1\n"))
    with pytest.raises(CorpusError, match="header but no rows"):
        load_manifest(_write(corpus_dir, "path,label,speaker\n"))
    with pytest.raises(CorpusError, match="cannot read manifest"):
        load_manifest(corpus_dir / "absent.csv")
    duplicate = "path,label,speaker\naudio/a.wav,neu,s\nother/a.wav,sad,s\n"
    with pytest.raises(CorpusError, match=r"m.csv:3: column 'utt_id': 'a' already used on line 2"):
        load_manifest(_write(corpus_dir, duplicate))


def test_missing_audio_is_counted_and_strict_fails(corpus_dir, caplog):
    csv_path = _write(corpus_dir, "path,label,speaker\naudio/a.wav,neu,s\naudio/gone.wav,sad,s\n")
    with caplog.at_level(logging.WARNING):
        records = load_manifest(csv_path)
    assert [r.utt_id for r in records] == ["a"]
    assert "1 of 2 labelled utterances have no audio file (gone)" in caplog.text
    with pytest.raises(CorpusError, match=r"\(gone\)"):
        load_manifest(csv_path, strict=True)


def test_splits(corpus_dir):
    rows = "audio/a.wav,neu,s,1,F,,train\naudio/b.wav,hap,s,1,F,,dev\naudio/c.wav,ang,s,2,M,,train\n"
    splits = manifest_splits(_write(corpus_dir, HEADER + rows))
    assert {name: [r.utt_id for r in records] for name, records in splits.items()} == {
        "train": ["a", "c"], "dev": ["b"], "test": []}
    assert manifest_splits(_write(corpus_dir, "path,label,speaker\naudio/a.wav,neu,s\n")) is None


def test_write_round_trips_atomically(corpus_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "x.wav"
    records = [Utterance("a", corpus_dir / "audio/a.wav", "s1", "F", 1, "neu", 0.1 + 0.2),
               Utterance("x", elsewhere, "s2", None, None, "sad")]
    out = write_manifest(records, corpus_dir / "out.csv", split_of={"a": "train", "x": "test"})
    lines = out.read_text().splitlines()
    assert lines[0] == "utt_id,path,label,speaker,gender,session,duration,split"
    assert lines[1] == "a,audio/a.wav,neu,s1,F,1,0.30000000000000004,train"  # relative, duration exact
    assert lines[2] == f"x,{elsewhere},sad,s2,,,,test"
    assert [p.name for p in corpus_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left
    assert read_manifest(out) == (records, {"a": "train", "x": "test"})


def test_cli_manifest_keeps_splits(corpus_dir, tmp_path_factory, capsys):
    rows = "audio/a.wav,neu,s1,1,F,,train\naudio/b.wav,hap,s2,1,M,,dev\naudio/c.wav,ang,s1,2,F,,test\n"
    csv_path = _write(corpus_dir, HEADER + rows)
    out_dir = tmp_path_factory.mktemp("out")
    assert main(["corpus", "manifest", "--csv", str(csv_path), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    # no duration column: the summary reads each wav's header (3 x 0.5 s)
    assert "3 utterances, 2 speakers (1 F, 1 M), 1.5 s of audio" in out and f"wrote {out_dir / 'corpus.csv'}" in out
    assert manifest_splits(out_dir / "corpus.csv") == manifest_splits(csv_path)


def test_cli_manifest_errors(corpus_dir, capsys):
    bad = _write(corpus_dir, "path,label,speaker\naudio/a.wav,joy,s\n")
    assert main(["corpus", "manifest", "--csv", str(bad), "--out", str(corpus_dir)]) == 2
    assert "m.csv:2: column 'label'" in capsys.readouterr().err
    gone = _write(corpus_dir, "path,label,speaker\naudio/gone.wav,neu,s\n")
    assert main(["corpus", "manifest", "--csv", str(gone), "--out", str(corpus_dir)]) == 2
    assert "no utterances with audio" in capsys.readouterr().err


def test_cli_manifest_validates_every_wav_before_writing(corpus_dir, capsys, caplog):
    out = corpus_dir / "out"
    csv_path = _write(corpus_dir, "path,label,speaker\naudio/a.wav,neu,s\naudio/b.wav,sad,s\naudio/c.wav,hap,s\n")
    good = (corpus_dir / "audio/a.wav").read_bytes()
    for bad in (b"", b"\x8f\x03random bytes" * 50, good[:30]):  # 0 bytes, random bytes, a header cut short
        (corpus_dir / "audio/c.wav").write_bytes(bad)
        assert main(["corpus", "manifest", "--csv", str(csv_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{corpus_dir / 'audio/c.wav'}: not a readable audio file" in err and err.count("\n") == 1, err
        assert not out.exists()
    (corpus_dir / "audio/c.wav").write_bytes(good[:44 + 100])  # a valid header, 50 of its 8000 samples
    with caplog.at_level(logging.WARNING):
        assert main(["corpus", "manifest", "--csv", str(csv_path), "--out", str(out)]) == 0
    assert f"{corpus_dir / 'audio/c.wav'}: truncated audio file: its header declares 16000 bytes" in caplog.text


def test_manifest_under_a_folder_named_in_another_encoding_is_refused(tmp_path, capsys):
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    folder.mkdir()
    sf.write(os.fsencode(folder / "a.wav"), np.zeros(800, np.float32), 16000)
    csv_path = _write(folder, "path,label,speaker\na.wav,neu,s\n")
    assert main(["corpus", "manifest", "--csv", str(csv_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "m.csv:2: column 'path': " in err and "caf\\xe9/a.wav is not valid UTF-8" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_synth_writes_manifest(tmp_path, capsys):
    assert main(["corpus", "synth", "--out", str(tmp_path), "--preset", "tiny", "--seed", "1"]) == 0
    records = load_manifest(tmp_path / "corpus.csv", strict=True)
    assert f"{len(records)} utterances" in capsys.readouterr().out
