"""In-process espeak-ng through ctypes: the library and data bundled by the `espeakng-loader` wheel."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from emodistill.errors import CorpusError

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_SSML = 0x10
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """One espeak-ng engine per process (the library keeps global state, so calls are serialised)."""

    _instance: Espeak | None = None
    _lock = threading.Lock()

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise CorpusError("espeakng-loader is not installed: `pip install espeakng-loader`") from None
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise CorpusError(f"espeak-ng failed to initialise with data at {data.decode()}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Espeak:
        """The process-wide engine, initialised on first use."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, samples, n, _events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(n,)).copy())
        return 0

    def speak(
        self, ssml: str, voice: str, *, rate: int, pitch: int, pitch_range: int, volume: int, seed: int
    ) -> np.ndarray:
        """int16 waveform at `self.sample_rate` for an SSML document spoken by `voice` (e.g. `en+f3`).

        espeak-ng also keeps state between calls, so only the same sequence of calls in a fresh
        process reproduces the same samples; `seed` fixes the random numbers its breathy voices draw.
        """
        with self._lock:
            self._lib.espeak_ng_SetRandSeed(seed)
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise CorpusError(f"espeak-ng has no voice {voice!r}")
            for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, volume)):
                self._lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            text = ssml.encode("utf-8") + b"\0"
            if self._lib.espeak_Synth(text, len(text), 0, 0, 0, _CHARS_UTF8 | _SSML, None, None) != 0:
                raise CorpusError(f"espeak-ng failed to synthesise {ssml!r}")
            if not self._chunks:
                raise CorpusError(f"espeak-ng produced no audio for {ssml!r}")
            return np.concatenate(self._chunks)
