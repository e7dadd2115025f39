"""Reading audio: soundfile for I/O, polyphase resampling (torchaudio does not work beside CPU torch)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from emodistill.errors import CorpusError
from emodistill.memory import check_memory

log = logging.getLogger(__name__)

RESAMPLE_BYTES = 24  # per output sample: resample_poly's float64 input and output, and the float32 result
_TRUNCATED = re.compile(r"^data\s*:\s*(?P<declared>\d+) \(should be (?P<present>\d+)\)", re.MULTILINE)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of `path` at `sample_rate` (resampled when the file differs)."""
    with open_audio(path) as sound:
        sr = sound.samplerate
        # Checked before reading: resampling a file of a tiny declared rate multiplies its length (1 Hz to 16 kHz:
        # 16000 times), and a header can declare any number of channels.
        resampled = sound.frames * sample_rate // sr if sr != sample_rate else 0
        check_memory(4 * sound.frames * sound.channels + RESAMPLE_BYTES * resampled,
                     f"{path}: {sound.frames} samples of {sound.channels} channel(s) at {sr} Hz, read at "
                     f"{sample_rate} Hz", "check the file's header, or split the file")
        wav = sound.read(dtype="float32", always_2d=True)
    if wav.shape[0] == 0:
        raise CorpusError(f"{path}: audio file is empty (0 samples)")
    finite = np.isfinite(wav).all(axis=1)
    if not finite.all():  # a float wav can hold them; features of one are NaN, and so is every loss trained on them
        bad = np.flatnonzero(~finite)
        raise CorpusError(f"{path}: {bad.size} of {finite.size} samples are NaN or infinite (the first at "
                          f"{bad[0] / sr:.3f} s): repair the file or drop it from the corpus")
    wav = wav.mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly  # scipy.signal costs seconds to import; most corpora need no resampling

        g = gcd(sr, sample_rate)
        wav = resample_poly(wav, sample_rate // g, sr // g).astype(np.float32)
    return wav


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the header alone."""
    with open_audio(path) as sound:
        return sound.frames / sound.samplerate


@contextmanager
def open_audio(path: str | Path) -> Iterator[sf.SoundFile]:
    """`path` open for reading; CorpusError when it is missing or unreadable, a warning when it is truncated."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: audio file not found")
    try:
        with sf.SoundFile(str(path)) as sound:
            # libsndfile reads what is there, and notes in its log a data chunk the header promised but the file
            # lacks ("data : 16000 (should be 100)"): a file cut short would pass as a few frames of audio.
            cut = _TRUNCATED.search(sound.extra_info)
            if cut:
                log.warning("%s: truncated audio file: its header declares %s bytes of audio data, the file holds %s",
                            path, cut["declared"], cut["present"])
            yield sound
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise CorpusError(f"{path}: not a readable audio file ({exc})") from None
