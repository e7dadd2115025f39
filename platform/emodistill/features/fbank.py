"""The weight-free default upstream: 80-bin log-mel filterbank, 25 ms window, 10 ms hop."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi-like log-mel settings."""

    sample_rate: int = 16000
    n_mels: int = 80
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512


class FbankUpstream:
    """Log-mel features (T, n_mels) from a mono waveform; no weights, numpy only."""

    name = "fbank"
    version = "1"
    layer = None
    batch_size = 32

    def __init__(self, config: FbankConfig = FbankConfig()):
        self.config = config
        self.sample_rate = config.sample_rate
        self.win = int(round(config.sample_rate * config.win_ms / 1000))
        self.hop = int(round(config.sample_rate * config.hop_ms / 1000))
        self.frame_rate = 1000.0 / config.hop_ms
        self.dim = config.n_mels
        self.window = window_function(self.win, "hann")
        self.mel = mel_filter_bank(
            num_frequency_bins=config.n_fft // 2 + 1,
            num_mel_filters=config.n_mels,
            min_frequency=20.0,
            max_frequency=config.sample_rate / 2,
            sampling_rate=config.sample_rate,
            norm=None,
            mel_scale="kaldi",
        )

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """Frames (T, n_mels) float32 for a waveform at `self.sample_rate`."""
        if len(wav) < self.win:
            wav = np.pad(wav, (0, self.win - len(wav)))
        spec = spectrogram(
            wav.astype(np.float32),
            self.window,
            frame_length=self.win,  # Kaldi framing: 400-sample frames, zero-padded to n_fft for the FFT
            hop_length=self.hop,
            fft_length=self.config.n_fft,
            power=2.0,
            center=False,
            mel_filters=self.mel,
            mel_floor=1e-10,
            log_mel="log",
        )
        return np.ascontiguousarray(spec.T, dtype=np.float32)

    def batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """Frames of each waveform (no padding: a filterbank has no batch dimension to share)."""
        return [self(w) for w in wavs]

    def describe(self) -> dict:
        """Config recorded in the table metadata."""
        return {"version": self.version, **asdict(self.config)}
