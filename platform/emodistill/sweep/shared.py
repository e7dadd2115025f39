"""Inputs every trial of a sweep shares, put in the Ray object store once by the driver.

Feature tables travel as the bytes of their Arrow IPC files in a uint8 numpy array: Ray maps a
numpy array from shared memory without copying, and `pa.ipc.open_file` over that buffer gives
a table whose frame buffers point into it. So the features sit in the object store once per node
(the driver reads the files once), and no trial reads feature files from disk. Features with folds
travel as their one whole-corpus table, whatever the number of folds: each trial views its fold's
splits in it (FeatureSet.subset), without a copy. The checkpoint pool and the real-data reference
are trained on a fold's train split, so there is one of each per fold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import ray
import torch

from emodistill.distill.pool import frozen
from emodistill.downstream import Downstream, build_downstream
from emodistill.evaluate.protocol import ReferenceResult
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import FeatureMeta
from emodistill.features.splits import DataConfig
from emodistill.features.store import CORPUS, fold_fingerprint, open_tables, read_index, resolve_fold, split_fold

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedInputs:
    """Object-store references to the sweep's shared inputs (small; passed to every trial)."""

    tables: dict[str, ray.ObjectRef]  # table (`corpus`, or each split) -> uint8 array holding its Arrow IPC file
    metas: dict[str, FeatureMeta]  # table -> its metadata, from the driver's validation (trials do not validate again)
    fingerprint: str  # the feature directory's recorded fingerprint
    folds: tuple[int | None, ...] = (None,)  # the sweep's folds (None: the directory's fixed splits)
    cut: dict | None = None  # the index's `folds` entry: how a fold cuts the other sessions into train/dev
    # Per fold: list of (Downstream config, weights as numpy arrays), for L_SML
    pools: dict[int | None, ray.ObjectRef] = field(default_factory=dict)
    # Per fold: ReferenceResult (no model) of the real-data downstream, and its MLflow run (the tag
    # `mcnemar.reference` of the fold's trials)
    references: dict[int | None, ray.ObjectRef] = field(default_factory=dict)
    reference_run_ids: dict[int | None, str] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)  # the data protocol: how dev is held out, normalisation

    def fold_fingerprint(self, fold: int | None) -> str:
        """The fingerprint of the fold's data under the sweep's data protocol (checked when a trial resumes)."""
        return fold_fingerprint(self.fingerprint, fold, self.data)


def put_features(directory: str | Path, data: DataConfig | None = None) -> tuple[dict[str, ray.ObjectRef],
                                                                             dict[str, FeatureMeta]]:
    """Validate a feature directory, then put each of its Arrow IPC files in the object store once (normalised by
    speaker first when `data` says so); the references and each table's metadata."""
    directory = Path(directory)
    tables = open_tables(directory, data)  # checked once, before sharing
    refs, total = {}, 0
    for name, (table, meta) in tables.items():
        buffer = np.fromfile(directory / f"{name}.arrow", dtype=np.uint8) if meta.normalization is None \
            else ipc_bytes(table)
        refs[name] = ray.put(buffer)
        total += buffer.nbytes
    log.info("put the feature tables of %s in the object store (%.1f MiB)", directory, total / 2**20)
    return refs, {name: meta for name, (_, meta) in tables.items()}


def ipc_bytes(table: pa.Table) -> np.ndarray:
    """The bytes of an Arrow IPC file holding `table`, as a uint8 array."""
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)


def share_inputs(directory: str | Path, folds: list[int | None] | None = None,
                 pools: dict[int | None, list[Downstream]] | None = None,
                 references: dict[int | None, ReferenceResult] | None = None,
                 reference_run_ids: dict[int | None, str] | None = None,
                 data: DataConfig | None = None) -> SharedInputs:
    """Put the feature tables (under the data protocol `data`), and per fold the checkpoint pool and the reference's
    predictions, in the object store; `folds` defaults to fold 1 of features with folds, else their fixed splits."""
    index = read_index(directory)
    cut = index.get("folds")
    if folds is None:
        folds = [resolve_fold(index, None, directory)]
    data = data or DataConfig()
    tables, metas = put_features(directory, data)
    pool_refs = {fold: ray.put([(member.config(), _to_numpy(member)) for member in pool])
                 for fold, pool in (pools or {}).items()}
    # The linear reference's model travels too (it is small): trials choose distilled sets in its embedding.
    reference_refs = {fold: ray.put(replace(reference.without_models(), model=reference.model))
                      for fold, reference in (references or {}).items()}
    return SharedInputs(tables=tables, metas=metas, fingerprint=index["fingerprint"], folds=tuple(folds), cut=cut,
                        pools=pool_refs, references=reference_refs, reference_run_ids=dict(reference_run_ids or {}),
                        data=data)


def table_from_buffer(data: np.ndarray) -> pa.Table:
    """The Arrow table whose IPC file bytes are `data`, without copying them."""
    return ipc.open_file(pa.py_buffer(data)).read_all()


def open_shared_splits(shared: SharedInputs, fold: int | None = None) -> dict[str, FeatureSet]:
    """The train/dev/test FeatureSets of `fold` (default: the sweep's first) viewed straight from the object store
    (inside a trial)."""
    fold = shared.folds[0] if fold is None else fold
    if shared.cut is None:
        return {split: FeatureSet.from_table(table_from_buffer(ray.get(ref)), f"object store ({split}.arrow)",
                                             shared.metas[split])
                for split, ref in shared.tables.items()}
    table = table_from_buffer(ray.get(shared.tables[CORPUS]))
    return split_fold(table, shared.metas[CORPUS], shared.cut, fold, f"object store ({CORPUS}.arrow)",
                      shared.data.dev_by)


def open_shared_pool(shared: SharedInputs, fold: int | None = None) -> list[Downstream] | None:
    """The frozen checkpoint pool of `fold` (default: the sweep's first), rebuilt from the shared weights (copied:
    the pool is small)."""
    ref = shared.pools.get(shared.folds[0] if fold is None else fold)
    if ref is None:
        return None
    members = []
    for config, weights in ray.get(ref):
        member = build_downstream(**config)
        member.load_state_dict({name: torch.tensor(array) for name, array in weights.items()})
        members.append(frozen(member))
    return members


def _to_numpy(module: Downstream) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().numpy() for name, tensor in module.state_dict().items()}
