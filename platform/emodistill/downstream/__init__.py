"""The SUPERB emotion downstream: model, padded batching, training with dev-UAR selection, I/O, metrics."""

from emodistill.downstream.io import load_downstream, read_downstream_config, save_downstream
from emodistill.downstream.metrics import confusion_matrix, uar
from emodistill.downstream.model import Downstream
from emodistill.downstream.train import (DownstreamConfig, DownstreamResult, embed_set, predict, predict_logits,
                                         train_downstream)

__all__ = [
    "Downstream", "DownstreamConfig", "DownstreamResult", "train_downstream", "predict", "predict_logits",
    "embed_set", "save_downstream", "load_downstream", "read_downstream_config", "uar",
    "confusion_matrix",
]
