"""The embedded espeak-ng corpus: shape, audio, determinism, and emotion carried by prosody alone."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tqdm import tqdm

from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.records import SUPERB_LABELS
from emodistill.corpora.synth import (
    IEMOCAP_CLASS_COUNTS,
    PRESETS,
    CorpusPreset,
    class_counts,
    plan_corpus,
    run_in_fresh_workers,
    synthesize_corpus,
)
from emodistill.errors import ConfigError, CorpusError

EMODISTILL = str(Path(sys.executable).with_name("emodistill"))  # the installed command, as a user runs it


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return out, synthesize_corpus(out, preset="tiny", seed=0, progress=False)


@pytest.fixture(scope="module")
def default_plan():
    return plan_corpus("default", seed=0)


def _digest(records) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(r.path.read_bytes())
    return h.hexdigest()


def test_tiny_has_iemocap_class_proportions(tiny):
    _, records = tiny
    assert 80 <= len(records) <= 120
    counts = Counter(r.label for r in records)
    assert set(counts) == set(SUPERB_LABELS)
    total = sum(IEMOCAP_CLASS_COUNTS.values())
    for label, count in IEMOCAP_CLASS_COUNTS.items():
        assert abs(counts[label] / len(records) - count / total) < 0.05


def test_five_sessions_of_one_female_and_one_male_speaker(tiny):
    _, records = tiny
    assert len({r.utt_id for r in records}) == len(records)
    speakers = {(r.session, r.speaker, r.gender) for r in records}
    assert speakers == {(s, f"Syn{s:02d}{g}", g) for s in range(1, 6) for g in "FM"}
    for r in records:
        assert r.utt_id.startswith(r.speaker + "_") and r.utt_id.endswith("_" + r.gender)


def test_wavs_are_complete_16k_mono_pcm16(tiny):
    out, records = tiny
    for r in records:
        info = sf.info(str(r.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert r.path.parent == out / "wav" / f"Session{r.session}"
        assert info.frames / 16000 == pytest.approx(r.duration)
        assert 0.5 < r.duration < 15
    assert not list(out.rglob("*.tmp"))  # atomic_path's temporary names


def test_same_seed_gives_identical_wavs_whatever_the_workers(tiny, tmp_path):
    _, records = tiny
    again = synthesize_corpus(tmp_path, preset="tiny", seed=0, progress=False, workers=1)
    assert [r.utt_id for r in again] == [r.utt_id for r in records]
    assert _digest(again) == _digest(records)


def test_other_seed_gives_another_corpus():
    a, b = plan_corpus("tiny", seed=0), plan_corpus("tiny", seed=1)
    assert [p.label for p in a] != [p.label for p in b]
    assert [p.prosody for p in a] != [p.prosody for p in b]


def test_every_class_reads_the_same_sentences():
    plans = plan_corpus("tiny", seed=0)
    texts = {label: {p.text for p in plans if p.label == label} for label in SUPERB_LABELS}
    assert len(texts["neu"]) == PRESETS["tiny"].n_sentences
    assert all(t == texts["neu"] for t in texts.values())


def test_default_plan_matches_iemocap_size(default_plan):
    counts = Counter(p.label for p in default_plan)
    assert len(default_plan) == 5531
    for label, count in IEMOCAP_CLASS_COUNTS.items():
        assert abs(counts[label] - count) <= 5
    sizes = Counter(p.speaker.session for p in default_plan)
    assert [sizes[s] for s in range(1, 6)] == [1085, 1023, 1151, 1031, 1241]
    assert len({p.text for p in default_plan}) == PRESETS["default"].n_sentences >= 500


def test_prosody_separates_classes_on_average(default_plan):
    def mean(label, field):
        return np.mean([getattr(p.prosody, field) for p in default_plan if p.label == label])

    assert mean("sad", "rate") < mean("neu", "rate") < mean("ang", "rate")
    assert mean("sad", "pitch") < mean("neu", "pitch") < mean("hap", "pitch")
    assert mean("sad", "volume") < mean("neu", "volume") < mean("ang", "volume")
    assert mean("sad", "pitch_range") < mean("neu", "pitch_range") < mean("hap", "pitch_range")


def test_angry_speech_is_louder_than_sad(tiny):
    _, records = tiny

    def loudness(label):
        return np.mean([np.sqrt(np.mean(sf.read(str(r.path))[0] ** 2)) for r in records if r.label == label])

    assert loudness("ang") > 1.5 * loudness("sad")


def test_class_counts_split_exactly():
    for n in (1, 7, 20, 1085):
        assert sum(class_counts(n).values()) == n


def _crash(_: str) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_crashed_worker_is_an_error_not_a_hang():
    died = "worker process died before returning while synthesising session 2"
    with tqdm(disable=True) as bar, pytest.raises(CorpusError, match=died):
        run_in_fresh_workers(_crash, {"session 2": ("x",)}, workers=1, bar=bar)


def _as_in_a_terminal() -> None:
    """In the child: Ctrl+C's default action, as a command started from a terminal has. A test run started in the
    background (`pytest &` in a script) passes SIGINT on ignored, and Python then leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


INTERRUPTED_POOL = """
import time
from tqdm import tqdm
from emodistill.corpora.synth import run_in_fresh_workers
if __name__ == "__main__":
    with tqdm(disable=True) as bar:
        run_in_fresh_workers(time.sleep, {"session 1": (600,), "session 2": (600,)}, workers=1, bar=bar)
"""


def test_ctrl_c_stops_the_workers_and_starts_no_queued_job(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(INTERRUPTED_POOL)
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_as_in_a_terminal)
    try:
        time.sleep(5)  # session 1 sleeping in its worker, session 2 queued
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) != 0  # session 2 never starts its ten minutes
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _group_ends(proc.pid, within=10)


def test_unknown_preset_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="huge"):
        synthesize_corpus(tmp_path, preset="huge")


@pytest.mark.parametrize(
    ("sizes", "n_sentences", "field"),
    [((20, 20), 5, "session_sizes"), ((20,) * 5, 25, "n_sentences"), ((20,) * 5, 0, "n_sentences")],
)
def test_presets_are_validated(sizes, n_sentences, field):
    with pytest.raises(ConfigError, match=field):
        CorpusPreset(sizes, n_sentences, "bad")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _group_ends(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(("signum", "group", "status"), [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)])
def test_a_synth_interrupted_over_a_corpus_leaves_that_corpus_as_it_was(tiny, tmp_path, signum, group, status):
    out = tmp_path / "corpus"
    shutil.copytree(tiny[0], out)
    before = _files(out)
    assert "corpus.csv" in before and any(name.endswith(".wav") for name in before)
    # Ctrl+C reaches the terminal's whole foreground group (the workers too); a service manager's SIGTERM the process.
    # `small` (1000 utterances) is still synthesising when the signal lands; `tiny` could finish first.
    proc = subprocess.Popen([EMODISTILL, "corpus", "synth", "--preset", "small", "--seed", "1", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_in_a_terminal)
    try:
        while not list(tmp_path.glob(".corpus.*.tmp/wav/*/*.wav")):  # the new corpus is being built aside
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
        # The parent stops its workers at once instead of letting the queued sessions run (minutes on a slow host).
        assert proc.wait(timeout=30) == status
        assert _group_ends(proc.pid, within=10)  # no worker outlives it (the forkserver leaves on its own)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # nothing left aside


def test_a_synth_over_a_corpus_replaces_it_whole_and_keeps_a_folder_of_other_files(tiny, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(tiny[0], out)
    (out / "wav" / "Session9").mkdir()  # a session the new corpus does not have
    records = synthesize_corpus(out, preset="tiny", seed=1, progress=False)
    assert not (out / "wav" / "Session9").exists()
    assert sorted(load_manifest(out / "corpus.csv", strict=True), key=lambda r: r.utt_id) == \
        sorted(records, key=lambda r: r.utt_id)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CorpusError, match=r"corpus: holds files other than a synthetic corpus's \(notes.txt\)"):
        synthesize_corpus(out, preset="tiny", seed=0, progress=False)
    assert (out / "notes.txt").read_text() == "mine"
