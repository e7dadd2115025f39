"""Corpora -> utterance records: IEMOCAP, the embedded espeak-ng corpus, CSV manifests."""

from emodistill.corpora.records import SUPERB_LABELS, Utterance

__all__ = ["SUPERB_LABELS", "Utterance"]
