"""Upstream features -> Arrow feature tables (the whole corpus, folds chosen at load; or fixed splits), memory-mapped
and schema-checked."""

from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import FeatureMeta, feature_schema, validate_table
from emodistill.features.store import (build_table, dataset_fingerprint, fingerprint, fold_sessions, load_splits,
                                       open_splits, read_index, read_table, write_table)
from emodistill.features.upstream import make_upstream

__all__ = ["FeatureMeta", "FeatureSet", "build_table", "dataset_fingerprint", "feature_schema", "fingerprint",
           "fold_sessions", "load_splits", "make_upstream", "open_splits", "read_index", "read_table", "validate_table",
           "write_table"]
