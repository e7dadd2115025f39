"""The emotion downstreams (decoders chosen by name): models, padded batching, training with dev-UAR selection,
I/O, metrics."""

from emodistill.downstream.io import load_downstream, read_downstream_config, save_downstream
from emodistill.downstream.metrics import accuracy, confusion_matrix, uar
from emodistill.downstream.model import DECODERS, DEFAULT_DECODER, Downstream, MeanPoolLinear, build_downstream
from emodistill.downstream.train import (DownstreamConfig, DownstreamResult, embed_set, predict, predict_logits,
                                         teacher_probabilities, train_downstream)

__all__ = [
    "DECODERS", "DEFAULT_DECODER", "Downstream", "MeanPoolLinear", "build_downstream", "DownstreamConfig",
    "DownstreamResult", "train_downstream", "predict", "predict_logits", "embed_set", "teacher_probabilities",
    "save_downstream", "load_downstream", "read_downstream_config", "uar", "accuracy", "confusion_matrix",
]
