"""Corpora -> utterance records: IEMOCAP, the embedded espeak-ng corpus, CSV manifests."""

from emodistill.corpora.folds import Fold, leave_one_session_out
from emodistill.corpora.iemocap import load_iemocap, read_iemocap
from emodistill.corpora.manifest import (MANIFEST_NAME, load_manifest, manifest_path, manifest_splits, read_manifest,
                                         write_manifest)
from emodistill.corpora.records import SUPERB_LABELS, Utterance
from emodistill.corpora.report import LoadReport, require_audio

__all__ = [
    "MANIFEST_NAME",
    "SUPERB_LABELS",
    "Fold",
    "LoadReport",
    "Utterance",
    "leave_one_session_out",
    "load_iemocap",
    "load_manifest",
    "manifest_path",
    "manifest_splits",
    "read_iemocap",
    "read_manifest",
    "require_audio",
    "write_manifest",
]
