"""Emotion as prosody alone: per-speaker baselines plus overlapping per-class shifts, rendered as SSML."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np


@dataclass(frozen=True)
class Speaker:
    """A synthetic actor: an espeak-ng voice and its neutral baseline (espeak parameter units)."""

    speaker: str  # "Syn01F": session 1, female
    gender: str
    session: int
    voice: str  # espeak-ng voice + variant, e.g. "en+f3"
    pitch: float  # base pitch, 0-100
    rate: float  # words per minute
    pitch_range: float  # 0-100
    volume_db: float  # loudness relative to espeak's default volume


def _speakers() -> tuple[Speaker, ...]:
    # (variant, pitch, rate, range, volume) per session for the female then the male actor.
    table = (
        (("f1", 52, 165, 50, 0.0), ("m1", 44, 175, 48, -1.0)),
        (("f2", 58, 180, 55, -1.5), ("m2", 40, 160, 45, 1.0)),
        (("f3", 48, 170, 45, 1.0), ("m3", 50, 185, 52, 0.0)),
        (("f4", 55, 160, 58, 0.5), ("m4", 38, 170, 50, -0.5)),
        (("f5", 50, 185, 48, -0.5), ("m6", 46, 165, 55, 1.5)),
    )
    return tuple(
        Speaker(f"Syn{session:02d}{gender}", gender, session, f"en+{variant}", pitch, rate, prange, vol)
        for session, pair in enumerate(table, start=1)
        for gender, (variant, pitch, rate, prange, vol) in zip("FM", pair)
    )


SPEAKERS: tuple[Speaker, ...] = _speakers()


@dataclass(frozen=True)
class Shift:
    """A Gaussian shift from the speaker's baseline; the mean is scaled by the utterance's intensity."""

    mean: float
    sd: float

    def draw(self, intensity: float, rng: np.random.Generator) -> float:
        """One sample of the shift at the given intensity."""
        return intensity * self.mean + self.sd * rng.standard_normal()


@dataclass(frozen=True)
class EmotionProsody:
    """How one emotion moves prosody; the spreads make neighbouring classes overlap."""

    pitch: Shift  # espeak pitch units
    pitch_range: Shift  # espeak range units
    rate: Shift  # percent of the speaker's rate
    volume_db: Shift
    pause_prob: float  # chance of a pause at each word boundary
    pause_ms: Shift


# Calibrated with benchmarks/corpus_difficulty.py: a linear probe on pooled fbank reaches UAR ~0.63 on
# held-out session 1 of the default preset. Narrower spreads or larger means make the corpus easier.
EMOTIONS: dict[str, EmotionProsody] = {
    "neu": EmotionProsody(Shift(0, 5), Shift(0, 8), Shift(0, 7), Shift(0, 2), 0.06, Shift(250, 80)),
    "hap": EmotionProsody(Shift(15, 5), Shift(25, 8), Shift(10, 7), Shift(3, 2), 0.05, Shift(200, 80)),
    "ang": EmotionProsody(Shift(8, 5), Shift(20, 8), Shift(20, 7), Shift(8, 2), 0.05, Shift(150, 60)),
    "sad": EmotionProsody(Shift(-12, 5), Shift(-25, 8), Shift(-25, 7), Shift(-7, 2), 0.15, Shift(450, 120)),
}
INTENSITY = (0.5, 1.3)  # uniform range of how strongly an utterance expresses its emotion


@dataclass(frozen=True)
class Prosody:
    """espeak-ng parameters and pauses for one utterance."""

    pitch: int
    pitch_range: int
    rate: int
    volume: int
    pauses: tuple[tuple[int, int], ...]  # (word index the pause follows, milliseconds)


def draw_prosody(speaker: Speaker, label: str, n_words: int, rng: np.random.Generator) -> Prosody:
    """Sample one utterance's prosody: speaker baseline + the emotion's shift at a random intensity."""
    emotion = EMOTIONS[label]
    intensity = rng.uniform(*INTENSITY)
    pitch = speaker.pitch + emotion.pitch.draw(intensity, rng)
    pitch_range = speaker.pitch_range + emotion.pitch_range.draw(intensity, rng)
    rate = speaker.rate * (1 + emotion.rate.draw(intensity, rng) / 100)
    volume_db = speaker.volume_db + emotion.volume_db.draw(intensity, rng)
    pauses = tuple(
        (i, int(max(50.0, emotion.pause_ms.draw(1.0, rng))))
        for i in range(n_words - 1)
        if rng.random() < emotion.pause_prob
    )
    return Prosody(
        pitch=int(np.clip(round(pitch), 0, 100)),
        pitch_range=int(np.clip(round(pitch_range), 0, 100)),
        rate=int(np.clip(round(rate), 80, 450)),
        volume=int(np.clip(round(100 * 10 ** (volume_db / 20)), 10, 200)),
        pauses=pauses,
    )


def to_ssml(text: str, pauses: tuple[tuple[int, int], ...]) -> str:
    """SSML for `text` with a <break> after the given words."""
    words = [escape(w) for w in text.split()]
    for index, ms in pauses:
        words[index] += f' <break time="{ms}ms"/>'
    return "<speak>" + " ".join(words) + "</speak>"
