"""Hidden states of a Hugging Face speech SSL encoder (HuBERT, WavLM, wav2vec 2.0) as an upstream."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from emodistill.errors import ConfigError
from emodistill.runtime import resolve_device

log = logging.getLogger(__name__)


def _min_samples(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Shortest waveform the conv feature encoder turns into one frame (its receptive field)."""
    n = 1
    for k, s in zip(reversed(kernels), reversed(strides)):
        n = (n - 1) * s + k
    return n


PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.ckpt.index", "flax_model.msgpack")


def _refuse_pickle_only(model: str) -> None:
    """A local model directory without safetensors weights but with a pickle-based checkpoint is a ConfigError."""
    directory = Path(model)
    if not directory.is_dir() or any(directory.glob("*.safetensors")):
        return
    pickled = [name for name in PICKLED_WEIGHTS if (directory / name).exists()]
    if pickled:
        raise ConfigError(f"--model {model}: only a pickle-based checkpoint ({pickled[0]}), which could run code as "
                          "it loads; convert it to safetensors where you trust it (AutoModel.from_pretrained(DIR)"
                          ".save_pretrained(DIR, safe_serialization=True)) or pass --allow-pickle")


class HFUpstream:
    """Frames (T, hidden_size) from one hidden layer of a speech encoder loaded with AutoModel."""

    name = "hf"

    def __init__(self, model: str, layer: int | str = "last", device: str = "auto", batch_size: int = 8,
                 allow_pickle: bool = False):
        if not allow_pickle:
            _refuse_pickle_only(model)
        try:
            config = AutoConfig.from_pretrained(model)
            # Checked before the weights load, so that a typo fails in a second rather than a minute.
            self.layer = self._resolve_layer(layer, config.num_hidden_layers)
            self.extractor = AutoFeatureExtractor.from_pretrained(model)
            # safetensors only, unless asked: a pickled checkpoint can run code as it loads.
            self.model = AutoModel.from_pretrained(model, config=config, use_safetensors=not allow_pickle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--model {model}: not a loadable Hugging Face speech model ({exc})") from None
        if not hasattr(self.model, "_get_feat_extract_output_lengths"):
            raise ConfigError(f"--model {model}: {config.model_type} is not a wav2vec2-style speech encoder")
        self.model_name = str(model)
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.sample_rate = int(self.extractor.sampling_rate)
        self.frame_rate = self.sample_rate / math.prod(config.conv_stride)
        self.dim = int(config.hidden_size)
        self.version = f"{config.model_type}/transformers-{transformers.__version__}"
        # Models trained with group norm in the conv stack expect zero padding without a mask.
        self.use_mask = bool(getattr(self.extractor, "return_attention_mask", False))
        self.min_samples = _min_samples(tuple(config.conv_kernel), tuple(config.conv_stride))
        log.info("loaded %s (%s, layer %d of %d) on %s", model, config.model_type, self.layer,
                 config.num_hidden_layers, self.device)

    @staticmethod
    def _resolve_layer(layer: int | str, n_layers: int) -> int:
        """Index into hidden_states: 0 is the input to the transformer, n_layers its output."""
        if layer == "last":
            return n_layers
        if isinstance(layer, str) and layer.lstrip("-").isdigit():
            layer = int(layer)
        if not isinstance(layer, int) or not 0 <= layer <= n_layers:
            raise ConfigError(f"layer {layer!r} is out of range: expected 'last' or an integer in [0, {n_layers}]")
        return layer

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """Frames (T, dim) float32 for one waveform at `self.sample_rate`."""
        return self.batch([wav])[0]

    @torch.inference_mode()
    def batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """Frames of each waveform, run as one padded batch and cropped to each true length."""
        wavs = [np.pad(w, (0, max(0, self.min_samples - len(w)))) for w in wavs]
        inputs = self.extractor(wavs, sampling_rate=self.sample_rate, padding=True, return_tensors="pt",
                                return_attention_mask=self.use_mask)
        mask = inputs["attention_mask"].to(self.device) if self.use_mask else None
        out = self.model(inputs["input_values"].to(self.device), attention_mask=mask, output_hidden_states=True)
        hidden = out.hidden_states[self.layer].float().cpu()
        lengths = self.model._get_feat_extract_output_lengths(torch.tensor([len(w) for w in wavs]))
        # Copies, so that each utterance does not keep the whole padded batch alive.
        return [hidden[i, :n].numpy().copy() for i, n in enumerate(lengths.tolist())]

    def describe(self) -> dict:
        """Config recorded in the table metadata."""
        return {"model": self.model_name, "version": self.version, "layer": self.layer,
                "hidden_size": self.dim, "num_hidden_layers": self.model.config.num_hidden_layers}
