"""Inputs every trial of a sweep shares, put in the Ray object store once by the driver.

Feature tables travel as the bytes of their Arrow IPC files in a uint8 numpy array: Ray maps a
numpy array from shared memory without copying, and `pa.ipc.open_file` over that buffer gives
a table whose frame buffers point into it. So the features sit in the object store once per node
(the driver reads the files once), and no trial reads feature files from disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import ray
import torch

from emodistill.distill.pool import frozen
from emodistill.downstream import Downstream
from emodistill.evaluate.protocol import ReferenceResult
from emodistill.features.dataset import FeatureSet
from emodistill.features.store import SPLITS, dataset_fingerprint, open_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedInputs:
    """Object-store references to the sweep's shared inputs (small; passed to every trial)."""

    tables: dict[str, ray.ObjectRef]  # split -> uint8 array holding that split's Arrow IPC file
    fingerprint: str  # the feature directory's recorded fingerprint (checked when a trial resumes)
    pool: ray.ObjectRef | None = None  # list of (Downstream config, weights as numpy arrays), for L_SML
    reference: ray.ObjectRef | None = None  # ReferenceResult (no model) of the real-data downstream
    reference_run_id: str | None = None  # its MLflow run (the tag `mcnemar.reference` of every trial)


def put_features(directory: str | Path) -> dict[str, ray.ObjectRef]:
    """Validate a feature directory, then put each split's Arrow IPC file in the object store once."""
    directory = Path(directory)
    open_splits(directory)  # schema + index checks before anything is shared
    refs, total = {}, 0
    for split in SPLITS:
        data = np.fromfile(directory / f"{split}.arrow", dtype=np.uint8)
        refs[split] = ray.put(data)
        total += data.nbytes
    log.info("put the feature tables of %s in the object store (%.1f MiB)", directory, total / 2**20)
    return refs


def share_inputs(directory: str | Path, pool: list[Downstream] | None = None,
                 reference: ReferenceResult | None = None, reference_run_id: str | None = None) -> SharedInputs:
    """Put the feature tables, the checkpoint pool and the reference's predictions in the object store."""
    tables = put_features(directory)
    fingerprint = dataset_fingerprint(directory)
    pool_ref = None if pool is None else ray.put([(member.config(), _to_numpy(member)) for member in pool])
    reference_ref = None if reference is None else ray.put(replace(reference, model=None))
    return SharedInputs(tables=tables, fingerprint=fingerprint, pool=pool_ref, reference=reference_ref,
                        reference_run_id=reference_run_id)


def table_from_buffer(data: np.ndarray) -> pa.Table:
    """The Arrow table whose IPC file bytes are `data`, without copying them."""
    return ipc.open_file(pa.py_buffer(data)).read_all()


def open_shared_splits(shared: SharedInputs) -> dict[str, FeatureSet]:
    """The train/dev/test FeatureSets viewed straight from the object store (inside a trial)."""
    return {split: FeatureSet.from_table(table_from_buffer(ray.get(ref)), f"object store ({split}.arrow)")
            for split, ref in shared.tables.items()}


def open_shared_pool(shared: SharedInputs) -> list[Downstream] | None:
    """The frozen checkpoint pool, rebuilt from the shared weights (copied: the pool is small)."""
    if shared.pool is None:
        return None
    members = []
    for config, weights in ray.get(shared.pool):
        member = Downstream(**config)
        member.load_state_dict({name: torch.tensor(array) for name, array in weights.items()})
        members.append(frozen(member))
    return members


def _to_numpy(module: Downstream) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().numpy() for name, tensor in module.state_dict().items()}
