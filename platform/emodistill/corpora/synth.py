"""The embedded corpus: IEMOCAP-shaped emotional speech synthesised locally with espeak-ng.

Five sessions of two actors (one female, one male espeak-ng voice each) read sentences whose words
say nothing about the emotion: every class reads the same sentence pool. The label lives only in
prosody (pitch level and range, rate, loudness, pauses), drawn from overlapping per-class
distributions around each actor's baseline, under additive noise at a random SNR.
"""

from __future__ import annotations

import io
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import cache
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import firwin, lfilter, resample_poly
from tqdm import tqdm

from emodistill.corpora.espeak import Espeak
from emodistill.corpora.manifest import MANIFEST_NAME, write_manifest
from emodistill.corpora.prosody import SPEAKERS, Prosody, Speaker, draw_prosody, to_ssml
from emodistill.corpora.records import SUPERB_LABELS, Utterance
from emodistill.corpora.sentences import sentence_pool
from emodistill.errors import ConfigError, CorpusError
from emodistill.files import atomic_path, check_replaceable

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CORPUS_FILES = frozenset({"wav", MANIFEST_NAME})  # what a synthetic corpus folder holds
SNR_DB = (5.0, 30.0)  # uniform range of the additive noise's signal-to-noise ratio
# IEMOCAP's 4-class counts (SUPERB mapping, exc -> hap); the class shares of every preset.
IEMOCAP_CLASS_COUNTS = {"neu": 1708, "hap": 1636, "ang": 1103, "sad": 1084}


def class_counts(n: int) -> dict[str, int]:
    """Split `n` utterances over the classes in IEMOCAP's proportions (largest remainder)."""
    total = sum(IEMOCAP_CLASS_COUNTS.values())
    exact = {label: n * count / total for label, count in IEMOCAP_CLASS_COUNTS.items()}
    counts = {label: int(x) for label, x in exact.items()}
    by_remainder = sorted(exact, key=lambda label: counts[label] - exact[label])
    for label in by_remainder[: n - sum(counts.values())]:
        counts[label] += 1
    return counts


@dataclass(frozen=True)
class CorpusPreset:
    """Size of a synthetic corpus: utterances per session and distinct sentences read."""

    session_sizes: tuple[int, ...]
    n_sentences: int  # at most the smallest class, so every class reads every sentence
    description: str

    def __post_init__(self):
        sessions = len({s.session for s in SPEAKERS})
        if len(self.session_sizes) != sessions or min(self.session_sizes) < 2:
            raise ConfigError(f"session_sizes={self.session_sizes}: expected {sessions} sizes of at least 2")
        smallest = min(class_counts(self.total).values())
        if not 1 <= self.n_sentences <= smallest:
            raise ConfigError(f"n_sentences={self.n_sentences}: expected 1..{smallest} (the smallest class)")

    @property
    def total(self) -> int:
        """Utterances in the whole corpus."""
        return sum(self.session_sizes)


PRESETS: dict[str, CorpusPreset] = {
    "tiny": CorpusPreset((20, 20, 20, 20, 20), 16, "100 utterances, for tests"),
    "small": CorpusPreset((196, 185, 208, 186, 225), 150, "1000 utterances, for the demo"),
    "default": CorpusPreset(
        (1085, 1023, 1151, 1031, 1241), 1000, "5531 utterances, IEMOCAP's 4-class size and session sizes"
    ),
}


@dataclass(frozen=True)
class PlannedUtterance:
    """Everything needed to synthesise one utterance, decided before any audio is made."""

    utt_id: str
    speaker: Speaker
    label: str
    text: str
    prosody: Prosody
    snr_db: float
    seed: int


def get_preset(name: str) -> CorpusPreset:
    """The preset called `name`, or ConfigError listing the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"corpus preset {name!r} is unknown; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def plan_corpus(preset: str = "default", seed: int = 0) -> list[PlannedUtterance]:
    """Labels, speakers, sentences, prosody and noise of every utterance, in a fixed order."""
    spec = get_preset(preset)
    rng = np.random.default_rng(seed)
    pool = sentence_pool(spec.n_sentences, rng)
    # Each class walks its own shuffled copy of the pool, so the text is independent of the label.
    readings = {label: itertools.cycle(rng.permutation(len(pool))) for label in SUPERB_LABELS}
    plans = []
    for session, size in enumerate(spec.session_sizes, start=1):
        labels = [label for label, k in class_counts(size).items() for _ in range(k)]
        actors = [s for s in SPEAKERS if s.session == session]
        taken = {actor.speaker: 0 for actor in actors}
        for i, label in enumerate(str(x) for x in rng.permutation(labels)):
            actor = actors[i % len(actors)]
            taken[actor.speaker] += 1
            text = pool[next(readings[label])]
            plans.append(PlannedUtterance(
                utt_id=f"{actor.speaker}_{taken[actor.speaker]:04d}_{actor.gender}",
                speaker=actor,
                label=label,
                text=text,
                prosody=draw_prosody(actor, label, len(text.split()), rng),
                snr_db=float(rng.uniform(*SNR_DB)),
                seed=int(rng.integers(2**31)),
            ))
    return plans


@cache
def _resampling_filter(up: int, down: int) -> np.ndarray:
    # resample_poly's own default design, computed once instead of on every call.
    rate = max(up, down)
    return firwin(20 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))


def render(plan: PlannedUtterance, engine: Espeak) -> np.ndarray:
    """The noisy 16 kHz float32 waveform of one planned utterance."""
    p = plan.prosody
    pcm = engine.speak(
        to_ssml(plan.text, p.pauses), plan.speaker.voice,
        rate=p.rate, pitch=p.pitch, pitch_range=p.pitch_range, volume=p.volume, seed=plan.seed,
    )
    g = gcd(engine.sample_rate, SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, engine.sample_rate // g
    speech = resample_poly(pcm.astype(np.float32) / 32768, up, down, window=_resampling_filter(up, down))
    rng = np.random.default_rng(plan.seed)
    # Noise coloured by a random one-pole low-pass: from white hiss to a low rumble.
    noise = lfilter([1.0], [1.0, -rng.uniform(0.0, 0.95)], rng.standard_normal(len(speech)))
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (plan.snr_db / 10))
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, wav: np.ndarray) -> None:
    """16-bit PCM wav written atomically, so a crash never leaves a truncated file."""
    # Encoded in memory and written by Python: libsndfile reports a full disk as "System error." without its errno,
    # where Python's OSError carries it (and is named after the corpus folder, like every other failed write).
    encoded = io.BytesIO()
    sf.write(encoded, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.getvalue())


_progress: mp.Queue | None = None


def _init_worker(progress: mp.Queue) -> None:
    global _progress
    _progress = progress
    # Ctrl+C reaches the terminal's whole process group. A KeyboardInterrupt raised inside espeak-ng's ctypes
    # callback is swallowed ("Exception ignored"), so a worker could go on writing; the parent stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _synthesize_session(plans: list[PlannedUtterance], wav_dir: Path) -> list[int]:
    """Worker: synthesise one session in a fresh process (espeak-ng's state must start clean)."""
    engine = Espeak.get()
    wav_dir.mkdir(parents=True, exist_ok=True)
    lengths = []
    for plan in plans:
        wav = render(plan, engine)
        write_wav(wav_dir / f"{plan.utt_id}.wav", wav)
        lengths.append(len(wav))
        _progress.put(1)
    return lengths


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the pool's queued jobs and end its workers now (Python 3.11 has no public way to): until its manager
    thread has gone, since the manager may still be starting a worker for a job it had already handed out."""
    processes, manager = pool._processes or {}, pool._executor_manager_thread
    pool.shutdown(wait=False, cancel_futures=True)
    while True:
        for process in list(processes.values()):
            process.terminate()
        if manager is None or not manager.is_alive():
            break
        manager.join(0.1)
    for process in list(processes.values()):
        process.join()


def run_in_fresh_workers(fn, jobs: dict[str, tuple], workers: int, bar: tqdm) -> list:
    """`fn(*args)` for every job, each in a fresh worker process; the workers' progress ticks advance `bar`.

    Each job gets its own child, forked from a server that never ran espeak-ng, so every session starts
    from a clean engine whatever ran before it; preloading (the caller's script too) makes the forks cheap.
    A child that dies before returning (a crash inside espeak-ng, the OOM killer) fails the call with a
    CorpusError naming the jobs still running, instead of hanging it.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", __name__])
    progress_queue = ctx.Queue()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(progress_queue,),
                             max_tasks_per_child=1) as pool:
        futures = {name: pool.submit(fn, *args) for name, args in jobs.items()}
        try:
            while not all(f.done() for f in futures.values()) or not progress_queue.empty():
                try:
                    bar.update(progress_queue.get(timeout=0.5))
                except queue.Empty:
                    pass
        except BaseException:  # Ctrl+C, SIGTERM: no job still queued may start, none running may go on writing
            _stop_workers(pool)
            raise
        broken = [name for name, future in futures.items() if isinstance(future.exception(), BrokenProcessPool)]
        if broken:
            raise CorpusError(f"a worker process died before returning while synthesising {', '.join(broken)} (a "
                              "crash inside espeak-ng, killed for memory, or a calling script without "
                              "`if __name__ == \"__main__\":`; its output above may say which)")
        return [future.result() for future in futures.values()]


def synthesize_corpus(
    out_dir: str | Path, preset: str = "default", seed: int = 0, progress: bool = True, workers: int | None = None
) -> list[Utterance]:
    """Synthesise the corpus as `out_dir/wav/Session{k}/` and its manifest `out_dir/corpus.csv`; return its records.

    The corpus is built beside `out_dir` and swapped in whole: an interrupted or failed run (Ctrl+C, a full disk)
    leaves the previous corpus there as it was. A folder holding anything but a corpus's files is refused. The same
    preset and seed give byte-identical wavs whatever the number of workers. Sessions are synthesised in worker
    processes, so a calling script needs the usual `if __name__ == "__main__":`.
    """
    plans = plan_corpus(preset, seed)
    out_dir = Path(out_dir).resolve()
    check_replaceable(out_dir, CORPUS_FILES, "a synthetic corpus", CorpusError)
    sessions = sorted({p.speaker.session for p in plans})
    by_session = {s: [p for p in plans if p.speaker.session == s] for s in sessions}
    workers = max(1, min(workers or os.cpu_count() or 1, len(sessions)))
    logger.info("synthesising %d utterances (preset %s, seed %d) into %s with %d workers",
                len(plans), preset, seed, out_dir, workers)
    start = time.perf_counter()
    with atomic_path(out_dir) as staging:
        jobs = {f"session {s}": (by_session[s], staging / "wav" / f"Session{s}") for s in sessions}
        with tqdm(total=len(plans), desc=f"synth {preset}", unit="utt", disable=not progress) as bar:
            lengths = dict(zip(sessions, run_in_fresh_workers(_synthesize_session, jobs, workers, bar)))
        records = [
            Utterance(
                utt_id=p.utt_id,
                path=Path("wav") / f"Session{s}" / f"{p.utt_id}.wav",
                speaker=p.speaker.speaker,
                gender=p.speaker.gender,
                session=s,
                label=p.label,
                duration=n / SAMPLE_RATE,
            )
            for s in sessions
            for p, n in zip(by_session[s], lengths[s])
        ]
        write_manifest([replace(r, path=staging / r.path) for r in records], staging / MANIFEST_NAME)
    records = [replace(r, path=out_dir / r.path) for r in records]
    hours = sum(r.duration for r in records) / 3600
    logger.info("wrote %d wavs (%.2f h of audio) in %.1f s", len(records), hours, time.perf_counter() - start)
    return records
