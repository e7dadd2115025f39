"""The speaker-ID privacy probe (paper Sec. 5.3, Table 4): how much speaker identity a downstream's first layer
(the pooled 256-d projector output) keeps. A linear speaker classifier is trained on embeddings of real
training-split utterances and tested on held-out utterances of the same speakers; lower accuracy = less
speaker information.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from emodistill.downstream import Downstream, embed_set
from emodistill.errors import ConfigError
from emodistill.features.dataset import FeatureSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """Speaker-ID accuracy on held-out utterances, and the majority-speaker accuracy for scale."""

    accuracy: float
    chance: float
    speakers: int
    train_utterances: int
    test_utterances: int

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def speaker_probe(embeddings: np.ndarray, speakers, test_fraction: float = 0.3, seed: int = 0) -> ProbeResult:
    """Accuracy of a logistic regression (standardised inputs) predicting the speaker, on a stratified held-out part."""
    # Imported here: scikit-learn costs seconds to import, and every sweep trial imports emodistill.evaluate.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    embeddings, speakers = np.asarray(embeddings), np.asarray([str(s) for s in speakers])
    if len(embeddings) != len(speakers):
        raise ConfigError(f"speaker probe: {len(embeddings)} embeddings but {len(speakers)} speaker ids")
    names, counts = np.unique(speakers, return_counts=True)
    # Stratification needs every speaker on both sides: drop speakers with a single utterance.
    keep = np.isin(speakers, names[counts >= 2])
    if (counts >= 2).sum() < 2:
        raise ConfigError("speaker probe: needs at least two speakers with two or more utterances each")
    try:
        x_train, x_test, y_train, y_test = train_test_split(embeddings[keep], speakers[keep], test_size=test_fraction,
                                                            stratify=speakers[keep], random_state=seed)
    except ValueError as exc:  # too few held-out utterances to hold every speaker
        raise ConfigError(f"speaker probe: cannot split {keep.sum()} utterances by speaker ({exc})") from None
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(x_train, y_train)
    accuracy = float(np.mean(classifier.predict(x_test) == y_test))
    _, test_counts = np.unique(y_test, return_counts=True)
    return ProbeResult(accuracy=accuracy, chance=float(test_counts.max() / len(y_test)),
                       speakers=len(np.unique(y_train)), train_utterances=len(y_train), test_utterances=len(y_test))


def privacy_probe(models: Mapping[str, Downstream], train: FeatureSet, test_fraction: float = 0.3,
                  seed: int = 0, device: str = "auto") -> dict[str, ProbeResult]:
    """Speaker-ID accuracy from each named downstream's embedding of the real training utterances (Table 4)."""
    if any(s is None for s in train.speakers):
        raise ConfigError("privacy probe: the training split has utterances without a speaker id")
    results = {}
    for name, model in models.items():
        results[name] = speaker_probe(embed_set(model, train, device=device), train.speakers, test_fraction, seed)
        log.info("speaker-ID probe, %s embedding: accuracy %.4f (chance %.4f, %d speakers)", name,
                 results[name].accuracy, results[name].chance, results[name].speakers)
    return results
