"""How a run makes its splits from a feature directory besides the fold: how dev is held out and how the real
features are normalised. Recorded in every fingerprint, generator, result and MLflow run."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel

from emodistill.corpora.folds import DevBy
from emodistill.strict import FROZEN_CONFIG


class DataConfig(BaseModel):
    """The data protocol of a run: `dev_by` ("utterance": SUPERB's random utterance split, dev shares the training
    speakers; "speaker": whole training speakers held out, unseen like the test speakers) and `normalize` ("none", or
    "speaker": every real utterance's frames standardised with its speaker's mean and std per dimension)."""

    model_config = FROZEN_CONFIG

    dev_by: DevBy = "utterance"
    normalize: Literal["none", "speaker"] = "none"

    def is_superb(self) -> bool:
        """True for SUPERB's protocol (utterance dev split, no normalisation): fingerprints as before these options."""
        return self == DataConfig()

    def describe(self) -> str:
        """A short label for tables and logs: `dev by speaker, speaker-normalised`."""
        normalized = ", speaker-normalised" if self.normalize == "speaker" else ""
        return f"dev by {self.dev_by}{normalized}"


def data_fingerprint(fingerprint: str, data: DataConfig) -> str:
    """`fingerprint` (a fold's) under the data protocol `data`; SUPERB's protocol leaves it unchanged."""
    if data.is_superb():
        return fingerprint
    key = f"{fingerprint}:dev_by={data.dev_by}:normalize={data.normalize}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
