"""The pool Θ of downstream checkpoints f_θ for the softmax-matching loss (paper Eq. 6), cached in storage."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator
from torch import nn
from tqdm.auto import tqdm

from emodistill import storage
from emodistill.distill.config import PoolConfig
from emodistill.downstream import Downstream, build_downstream, load_downstream, save_downstream, train_downstream
from emodistill.errors import ConfigError
from emodistill.features.dataset import FeatureSet
from emodistill.strict import WRITTEN_FILE

log = logging.getLogger(__name__)

POINT_FRACTIONS = {"early": 0.1, "middle": 0.5}
INDEX_FILE = "pool.json"


class PoolIndex(BaseModel):
    """pool.json: the members of a cached pool, each a downstream folder beside it (a bare name: never a path)."""

    model_config = WRITTEN_FILE
    members: list[str] = Field(min_length=1)

    @field_validator("members")
    @classmethod
    def _bare_names(cls, members: list[str]) -> list[str]:
        bad = [name for name in members if not re.fullmatch(r"[A-Za-z0-9_]+", name)]
        if bad:
            raise ValueError(f"{bad} are not member folder names (letters, digits, underscores)")
        return members


def feature_fingerprint(*splits: FeatureSet) -> str:
    """16 hex chars of sha256 over the frames, offsets (as if packed) and labels of the given splits."""
    digest = hashlib.sha256()
    for fs in splits:
        digest.update(json.dumps(list(fs.label_names)).encode())
        for array in (np.concatenate([[0], np.cumsum(fs.lengths)]), fs.labels):
            digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
        for block in fs.frame_chunks(1 << 18):  # a split's own frames, not the whole buffer of a fold's view
            digest.update(memoryview(np.ascontiguousarray(block)).cast("B"))
    return digest.hexdigest()[:16]


def pool_key(config: PoolConfig, fingerprint: str) -> str:
    """Cache key: the feature fingerprint plus a hash of the pool config (the device does not change the pool)."""
    settings = config.model_dump_json(exclude={"downstream": {"device"}})
    config_hash = hashlib.sha256(settings.encode()).hexdigest()[:12]
    return f"{fingerprint}-{config_hash}"


def snapshot_steps(config: PoolConfig) -> dict[str, int]:
    """Training step of every snapshot point (all points but "converged", which is the dev-selected model)."""
    max_steps = config.downstream.max_steps
    steps = {}
    for point in config.points:
        if point != "converged":
            fraction = POINT_FRACTIONS.get(point, point)
            steps[str(point)] = max(1, round(fraction * max_steps))
    return steps


def frozen(model: nn.Module) -> nn.Module:
    """The model in eval mode with gradients off: the pool is a fixed target, never trained by the GAN."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _train_members(train: FeatureSet, dev: FeatureSet, config: PoolConfig, progress: bool) -> dict[str, Downstream]:
    """k downstreams with different seeds; every requested point of each, named `seed{i}_{point}`."""
    steps = snapshot_steps(config)
    wanted = sorted(set(steps.values()))
    members = {}
    # One bar for the pool, not one per downstream.
    for i in tqdm(range(config.k), desc="L_SML pool", unit="downstream", disable=not progress):
        downstream_config = config.downstream.model_copy(update={"seed": config.downstream.seed + i})
        log.debug("pool: training downstream %d/%d (seed %d)", i + 1, config.k, downstream_config.seed)
        result = train_downstream(train, dev, downstream_config, snapshot_steps=wanted, progress=False)
        taken = dict(zip(wanted, result.snapshots))  # an early stop drops the last snapshots
        for point in config.points:
            name = f"seed{i}_{point}"
            if point == "converged":
                members[name] = result.model
            elif steps[str(point)] in taken:
                model = build_downstream(downstream_config.decoder, train.dim, len(train.label_names),
                                         downstream_config.hidden)
                model.load_state_dict(taken[steps[str(point)]])
                members[name] = model
            else:
                log.warning("pool: %s skipped (downstream stopped early at step %d)", name, result.steps)
    if not members:
        raise ConfigError("pool: no checkpoint was taken; lower pool.points or raise pool.downstream.patience")
    return members


def train_pool(train: FeatureSet, dev: FeatureSet, config: PoolConfig, cache_dir: str | Path | None = None,
               fingerprint: str | None = None, progress: bool = True) -> list[Downstream]:
    """Frozen downstream checkpoints trained on real data; reused from `cache_dir` (a folder or a storage URI)
    when trained before."""
    if cache_dir is None:
        return [frozen(m) for m in _train_members(train, dev, config, progress).values()]
    key = pool_key(config, fingerprint or feature_fingerprint(train, dev))
    directory = storage.join(storage.resolve(cache_dir), key)
    index = storage.join(directory, INDEX_FILE)
    if storage.exists(index):
        log.info("reusing pool from %s", directory)
        names = storage.read_json(index, PoolIndex, missing="pool index removed while reading it").members
        with storage.local_copy(directory) as local:
            return [frozen(load_downstream(local / name)) for name in names]
    members = _train_members(train, dev, config, progress)
    with storage.staged_folder(directory) as local:
        for name, model in members.items():
            save_downstream(model, local / name, extra={"pool": config.model_dump(mode="json")})
    # The index is written last: a pool interrupted mid-way is trained again, never half reused.
    storage.write_text(index, json.dumps({"members": list(members)}, indent=2))
    log.info("pool of %d checkpoints saved to %s", len(members), directory)
    return [frozen(m) for m in members.values()]
