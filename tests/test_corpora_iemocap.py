"""IEMOCAP loading on a miniature tree in the real format, and `emodistill corpus iemocap`."""

from __future__ import annotations

import logging
import shutil
from collections import Counter

import pytest

from emodistill.cli.main import main
from emodistill.corpora import SUPERB_LABELS, load_iemocap, load_manifest, read_iemocap, require_audio
from emodistill.errors import CorpusError
from iemocap_fixture import EXPECTED_LABELS, EXPECTED_TOTAL, KEPT_PER_SESSION, MISSING_WAV, SPAN, make_iemocap_tree


def test_counts_and_superb_label_mapping(iemocap_root):
    records = load_iemocap(iemocap_root)
    assert len(records) == EXPECTED_TOTAL
    assert Counter(r.label for r in records) == EXPECTED_LABELS
    assert set(Counter(r.label for r in records)) == set(SUPERB_LABELS)
    per_session = Counter(r.session for r in records)
    assert per_session == {1: KEPT_PER_SESSION, 2: KEPT_PER_SESSION - 1, 3: KEPT_PER_SESSION,
                           4: KEPT_PER_SESSION, 5: KEPT_PER_SESSION}
    by_id = {r.utt_id: r for r in records}
    assert by_id["Ses01F_impro01_F001"].label == "hap"  # exc -> hap
    assert "Ses01F_impro01_M001" not in by_id  # xxx dropped
    assert "Ses01M_script01_1_M000" not in by_id  # fru dropped
    assert "Ses01M_script01_1_F000" not in by_id  # sur dropped


def test_speaker_is_taken_from_the_line_not_the_dialog(iemocap_root):
    by_id = {r.utt_id: r for r in load_iemocap(iemocap_root)}
    male_in_female_dialog = by_id["Ses03F_impro01_M000"]
    assert (male_in_female_dialog.speaker, male_in_female_dialog.gender) == ("Ses03M", "M")
    female_in_male_dialog = by_id["Ses04M_script01_1_F001"]
    assert (female_in_male_dialog.speaker, female_in_male_dialog.gender) == ("Ses04F", "F")
    assert {r.speaker for r in by_id.values()} == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}


def test_paths_and_durations(iemocap_root):
    record = next(r for r in load_iemocap(iemocap_root) if r.utt_id == "Ses05M_script01_1_M001")
    assert record.path == iemocap_root / "Session5/sentences/wav/Ses05M_script01_1/Ses05M_script01_1_M001.wav"
    assert record.path.is_file()
    assert record.duration == pytest.approx(SPAN)


def test_missing_wav_is_reported_not_silently_dropped(iemocap_root, caplog):
    with caplog.at_level(logging.WARNING):
        kept, report = require_audio(read_iemocap(iemocap_root), source=iemocap_root)
    assert report.missing == (MISSING_WAV,)
    assert report.kept == len(kept) == EXPECTED_TOTAL
    assert f"1 of {EXPECTED_TOTAL + 1}" in caplog.text and MISSING_WAV in caplog.text
    with pytest.raises(CorpusError, match=MISSING_WAV):
        load_iemocap(iemocap_root, strict=True)


def test_partial_tree_with_sessions(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=(1, 3))
    records = load_iemocap(root, sessions=(1, 3))
    assert Counter(r.session for r in records) == {1: KEPT_PER_SESSION, 3: KEPT_PER_SESSION}
    with pytest.raises(CorpusError, match="Session2"):
        load_iemocap(root)
    with pytest.raises(CorpusError, match="subset of"):
        load_iemocap(root, sessions=(0, 1))


def test_missing_emoevaluation_folder_is_named(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=(1, 2))
    shutil.rmtree(root / "Session2/dialog/EmoEvaluation")
    with pytest.raises(CorpusError, match=r"Session2/dialog/EmoEvaluation: IEMOCAP folder not found"):
        load_iemocap(root, sessions=(1, 2))


@pytest.mark.parametrize("bad_line, problem", [
    ("[6.2901 - 8.2357]\tSes01F_impro01_F009", "expected"),
    ("[6.2901 8.2357]\tSes01F_impro01_F009\tneu\t[2.5, 2.5, 2.5]", "time span"),
    ("[8.0000 - 6.0000]\tSes01F_impro01_F009\tneu\t[2.5, 2.5, 2.5]", "end > start"),
    ("[6.2901 - 8.2357]\tSes02F_impro01_F009\tneu\t[2.5, 2.5, 2.5]", "utterance id"),
    ("[6.2901 - 8.2357]\tSes01F_impro01_X009\tneu\t[2.5, 2.5, 2.5]", "utterance id"),
    ("[6.2901 - 8.2357]\tSes01F_impro01_F009\tjoy\t[2.5, 2.5, 2.5]", "unknown emotion code 'joy'"),
])
def test_malformed_label_line_names_file_and_line(tmp_path, bad_line, problem):
    root = make_iemocap_tree(tmp_path, sessions=(1,))
    label_file = root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    lines = label_file.read_text().splitlines()
    lines.insert(4, bad_line)
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=problem) as error:
        load_iemocap(root, sessions=(1,))
    assert f"{label_file}:5:" in str(error.value)


def test_unreadable_label_file(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=(1,))
    label_file = root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    label_file.unlink()
    label_file.mkdir()  # a folder named like a label file cannot be read as one
    with pytest.raises(CorpusError, match="cannot read label file") as error:
        load_iemocap(root, sessions=(1,))
    assert str(label_file) in str(error.value)


def test_cli_writes_manifest_and_summary(iemocap_root, tmp_path, capsys):
    assert main(["corpus", "iemocap", "--root", str(iemocap_root), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{EXPECTED_TOTAL} utterances, 10 speakers (5 F, 5 M)" in out
    assert f"{EXPECTED_TOTAL * SPAN:.1f} s of audio" in out
    assert MISSING_WAV in out and f"wrote {tmp_path / 'corpus.csv'}" in out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[:7]}
    assert table["session"] == [*SUPERB_LABELS, "total"]
    assert table["2"] == ["2", "3", "1", "1", "7"]
    assert table["all"] == [*(str(EXPECTED_LABELS[x]) for x in SUPERB_LABELS), str(EXPECTED_TOTAL)]
    assert load_manifest(tmp_path / "corpus.csv") == load_iemocap(iemocap_root)


def test_cli_errors_are_one_line(iemocap_root, tmp_path, capsys):
    assert main(["corpus", "iemocap", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emodistill corpus: error:") and "\n" not in err
    assert "nowhere: IEMOCAP root folder not found" in err
    assert main(["corpus", "iemocap", "--root", str(iemocap_root), "--out", str(tmp_path), "--strict"]) == 2
    assert MISSING_WAV in capsys.readouterr().err
    assert not (tmp_path / "corpus.csv").exists()
