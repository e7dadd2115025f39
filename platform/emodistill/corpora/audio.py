"""Reading audio: soundfile for I/O, polyphase resampling (torchaudio does not work beside CPU torch)."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from emodistill.errors import CorpusError


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of `path` at `sample_rate` (resampled when the file differs)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: audio file not found")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise CorpusError(f"{path}: not a readable audio file ({exc})") from None
    if wav.shape[0] == 0:
        raise CorpusError(f"{path}: audio file is empty (0 samples)")
    wav = wav.mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly  # scipy.signal costs seconds to import; most corpora need no resampling

        g = gcd(sr, sample_rate)
        wav = resample_poly(wav, sample_rate // g, sr // g).astype(np.float32)
    return wav


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the header alone."""
    info = sf.info(str(path))
    return info.frames / info.samplerate
