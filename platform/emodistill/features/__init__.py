"""Upstream features -> Arrow feature tables (one per split), memory-mapped and schema-checked."""

from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import FeatureMeta, feature_schema, validate_table
from emodistill.features.store import (build_table, dataset_fingerprint, fingerprint, load_splits, open_splits,
                                       read_table, write_table)
from emodistill.features.upstream import make_upstream

__all__ = ["FeatureMeta", "FeatureSet", "build_table", "dataset_fingerprint", "feature_schema", "fingerprint",
           "load_splits", "make_upstream", "open_splits", "read_table", "validate_table", "write_table"]
