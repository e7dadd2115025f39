"""What an evaluation returns: per-condition results, a source's results, the real-data reference; JSON round trips."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import BaseModel

from emodistill.downstream import DEFAULT_DECODER, Downstream
from emodistill.strict import WRITTEN_FILE


@dataclass
class ConditionResult:
    """The repeats of one condition: UAR per repeat, its summary, and repeat 0's test predictions and model."""

    key: str
    counts: dict[str, int]
    uars: list[float]
    train_seconds: list[float]  # wall time to the selected checkpoint, per repeat
    mean: float
    std: float
    low: float  # confidence interval of the mean
    high: float
    predictions: np.ndarray  # repeat 0's predictions on the test split (a real model, not an ensemble)
    confusion: np.ndarray
    model: Downstream | None = None  # repeat 0's downstream (not serialised)
    mcnemar_p: float | None = None  # repeat 0 against the reference, when one was given
    dev_uars: list[float] = field(default_factory=list)  # best dev UAR of each repeat's downstream (for choices)
    accs: list[float] = field(default_factory=list)  # test accuracy of each repeat (SUPERB's metric)
    decoder: str = DEFAULT_DECODER  # the downstream head trained on the condition's draws

    @property
    def dev_mean(self) -> float:
        """Mean dev UAR over the repeats: what a choice between sources or checkpoints may read."""
        return float(np.mean(self.dev_uars))

    def to_dict(self) -> dict:
        """JSON-ready fields (the model is left out)."""
        return {"key": self.key, "counts": self.counts, "uars": self.uars, "train_seconds": self.train_seconds,
                "mean": self.mean, "std": self.std, "low": self.low, "high": self.high,
                "predictions": self.predictions.tolist(), "confusion": self.confusion.tolist(),
                "mcnemar_p": self.mcnemar_p, "dev_uars": self.dev_uars, "accs": self.accs, "decoder": self.decoder}

    @classmethod
    def from_dict(cls, data: Mapping) -> ConditionResult:
        """The inverse of to_dict."""
        return cls(**{**data, "predictions": np.asarray(data["predictions"], np.int64),
                      "confusion": np.asarray(data["confusion"], np.int64)})


@dataclass
class EvalResult:
    """Every condition of one training-set source (a generator or a baseline), scored on the real test split."""

    name: str
    label_names: tuple[str, ...]
    y_true: np.ndarray
    conditions: dict[str, ConditionResult] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Flat metrics: `uar_{key}` (test, mean over repeats), `uar_{key}_std`, `acc_{key}` (test accuracy, mean),
        `dev_uar_{key}` (dev, mean over repeats) and `mcnemar_p_{key}` vs the reference; a key ends in its decoder's
        name unless the decoder is `linear`."""
        out = {}
        for key, c in self.conditions.items():
            out[f"uar_{key}"], out[f"uar_{key}_std"] = c.mean, c.std
            if c.accs:
                out[f"acc_{key}"] = float(np.mean(c.accs))
            if c.dev_uars:
                out[f"dev_uar_{key}"] = c.dev_mean
            if c.mcnemar_p is not None:
                out[f"mcnemar_p_{key}"] = c.mcnemar_p
        return out

    @property
    def predictions(self) -> dict[str, np.ndarray]:
        """Condition key (`ppc100`, `full_imbalanced`, ...) -> repeat 0's test predictions."""
        return {key: c.predictions for key, c in self.conditions.items()}

    def predictions_json(self) -> dict[str, list[int]]:
        """`predictions` as JSON-ready lists."""
        return {key: pred.tolist() for key, pred in self.predictions.items()}

    def to_dict(self) -> dict:
        """JSON-ready form (results.json)."""
        return {"name": self.name, "label_names": list(self.label_names), "y_true": self.y_true.tolist(),
                "conditions": {k: c.to_dict() for k, c in self.conditions.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> EvalResult:
        """The inverse of to_dict."""
        return cls(name=data["name"], label_names=tuple(data["label_names"]),
                   y_true=np.asarray(data["y_true"], np.int64),
                   conditions={k: ConditionResult.from_dict(c) for k, c in data["conditions"].items()})


@dataclass
class ReferenceResult:
    """The downstream trained on the full real training split: the line every budget is compared with. It is the
    `linear` head's; `decoders` holds the same reference for each other decoder evaluated (each decoder's own
    real-full score)."""

    uar_real_full: float
    label_names: tuple[str, ...]
    y_true: np.ndarray
    predictions: np.ndarray
    confusion: np.ndarray
    train_seconds: float
    best_step: int
    model: Downstream | None = None
    acc_real_full: float | None = None
    decoder: str = DEFAULT_DECODER
    decoders: dict[str, ReferenceResult] = field(default_factory=dict)

    def without_models(self) -> ReferenceResult:
        """The same results without the trained models (what is shared with trials or written as JSON)."""
        return replace(self, model=None, decoders={name: r.without_models() for name, r in self.decoders.items()})

    def for_decoder(self, decoder: str) -> ReferenceResult | None:
        """The reference of `decoder` (this one for its own decoder), None when it was not trained."""
        return self if decoder == self.decoder else self.decoders.get(decoder)

    @property
    def metrics(self) -> dict[str, float]:
        """`uar_real_full` and `acc_real_full`, suffixed `_{decoder}` for decoders other than linear."""
        out = {}
        for reference in (self, *self.decoders.values()):
            suffix = "" if reference.decoder == DEFAULT_DECODER else f"_{reference.decoder}"
            out[f"uar_real_full{suffix}"] = reference.uar_real_full
            if reference.acc_real_full is not None:
                out[f"acc_real_full{suffix}"] = reference.acc_real_full
        return out

    def to_dict(self) -> dict:
        """JSON-ready fields (the models are left out)."""
        return {"uar_real_full": self.uar_real_full, "label_names": list(self.label_names),
                "y_true": self.y_true.tolist(),
                "predictions": self.predictions.tolist(), "confusion": self.confusion.tolist(),
                "train_seconds": self.train_seconds, "best_step": self.best_step, "acc_real_full": self.acc_real_full,
                "decoder": self.decoder, "decoders": {name: r.to_dict() for name, r in self.decoders.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> ReferenceResult:
        """The inverse of to_dict."""
        arrays = {k: np.asarray(data[k], np.int64) for k in ("y_true", "predictions", "confusion")}
        decoders = {name: cls.from_dict(r) for name, r in data.get("decoders", {}).items()}
        return cls(**{**data, **arrays, "label_names": tuple(data["label_names"]), "decoders": decoders})


class ReferenceRecord(BaseModel):
    """ReferenceResult.to_dict as a sweep logs it (reference.json), read strictly before from_dict rebuilds it."""

    model_config = WRITTEN_FILE
    uar_real_full: float
    label_names: list[str]
    y_true: list[int]
    predictions: list[int]
    confusion: list[list[int]]
    train_seconds: float
    best_step: int
    acc_real_full: float | None = None
    decoder: str = DEFAULT_DECODER
    decoders: dict[str, ReferenceRecord] = {}
