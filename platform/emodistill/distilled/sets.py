"""Distilled sets: a synthetic set chosen for its budget from a trained generator, and how it was made.

Methods (`SetSpec.method`): `iid` draws the budget as `sample` does (the paper-faithful default); `herding`,
`cover` and `moments` draw `candidates` x the budget per class and keep the budget that best matches or covers the
real class in the embedding of a downstream trained on the real training split (distilled/selection.py); `dm`
optimises the latent codes of the frozen generator by distribution matching (distilled/matching.py). A set is a
feature table in the schema of real ones whose metadata records its provenance (method, budget, candidates, seed,
the generator's digest and the data it learnt from).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from emodistill.distilled.matching import MatchConfig, match_latents
from emodistill.distilled.selection import PICKERS
from emodistill.downstream import Downstream, DownstreamConfig, embed_set, train_downstream
from emodistill.errors import ConfigError
from emodistill.features.dataset import FeatureSet
from emodistill.features.store import build_table, write_table
from emodistill.generator import TrainedGenerator, class_counts
from emodistill.strict import FROZEN_CONFIG, PositiveInt, Seed

Method = Literal["iid", "herding", "cover", "moments", "dm"]
MAX_CANDIDATES = 1_000_000  # generated candidates per set, all classes together (memory: frames x dim floats each)


class SetSpec(BaseModel):
    """How a distilled set is chosen for its budget."""

    model_config = FROZEN_CONFIG

    method: Method = "iid"
    candidates: PositiveInt = Field(default=20, description="herding/cover/moments: candidates drawn per kept sample")
    seed: Seed = 0
    match: MatchConfig = Field(default_factory=MatchConfig, description="dm: the latent optimisation's settings")

    def label(self) -> str:
        """A short name for tables: `iid`, `herding x20`, `dm`."""
        return f"{self.method} x{self.candidates}" if self.method in PICKERS else self.method


def embedding_model(train: FeatureSet, dev: FeatureSet, seed: int = 0) -> Downstream:
    """The embedding the pickers and the latent matching work in: a linear downstream trained on the real training
    split (the evaluation protocol's recipe, its checkpoint chosen on dev)."""
    config = DownstreamConfig(max_steps=1000, eval_every=100, seed=seed, device="cpu")
    return train_downstream(train, dev, config, progress=False).model


def trained_splits(generator: TrainedGenerator, directory: str | Path,
                   fold: int | None = None) -> dict[str, FeatureSet]:
    """The real splits `generator` learnt from in the feature directory: its fold (found by the fingerprint it
    recorded unless given) under the data protocol it was trained with."""
    from emodistill.features.splits import DataConfig
    from emodistill.features.store import fold_of, load_splits, read_index

    data = DataConfig.model_validate(generator.config.get("training", {}).get("data", {}))
    found = fold_of(read_index(directory), generator.config.get("features"), data)
    if fold is not None and found is not None and found != fold:
        raise ConfigError(f"{directory}: the generator learnt from fold {found}, not fold {fold}")
    return load_splits(directory, fold if fold is not None else found, data)


def generator_digest(generator: TrainedGenerator) -> str:
    """16 hex chars of sha256 over the generator's weights (names, shapes and bytes, in order)."""
    digest = hashlib.sha256()
    for name, tensor in generator.module.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()[:16]


def distilled_set(generator: TrainedGenerator, real: FeatureSet, ppc: int | Mapping[str, int], spec: SetSpec,
                  embedding: Downstream | None = None) -> FeatureSet:
    """The budget's synthetic set (`ppc` per class, or a mapping label -> count) chosen by `spec`; `real` is the
    real training split the generator learnt from, `embedding` a downstream trained on it (needed by every method
    but iid)."""
    if generator.label_names != real.label_names:
        raise ConfigError(f"distilled set: generator labels {generator.label_names} differ from the real split's "
                          f"{real.label_names}")
    counts = class_counts(ppc, generator.label_names, generator.class_prior)
    if spec.method == "iid":
        return generator.sample_features(dict(zip(generator.label_names, counts.tolist())), seed=spec.seed)
    if embedding is None:
        raise ConfigError(f"distilled set: method {spec.method!r} needs a downstream trained on the real data")
    if spec.method == "dm":
        labels, noise = match_latents(generator, real, counts, embedding, spec.match, spec.seed)
        import torch

        with torch.no_grad():
            features = generator.decode(torch.from_numpy(labels), torch.from_numpy(noise)).cpu().numpy()
        return generator.feature_set(labels, features)
    return _picked(generator, real, counts, spec, embedding)


def _picked(generator: TrainedGenerator, real: FeatureSet, counts: np.ndarray, spec: SetSpec,
            embedding: Downstream) -> FeatureSet:
    """Per class, `candidates x counts[c]` generated candidates, of which the picker of `spec.method` keeps
    counts[c]."""
    total = int(counts.sum()) * spec.candidates
    if total > MAX_CANDIDATES:
        raise ConfigError(f"distilled set: {spec.candidates} candidates per sample for {int(counts.sum())} samples "
                          f"is {total} candidates; at most {MAX_CANDIDATES}: lower the candidates or the budget")
    real_embedded = embed_set(embedding, real, device="cpu")
    labels, kept = [], []
    for c, n in enumerate(counts):
        if n == 0:
            continue
        wanted = {name: (int(n) * spec.candidates if k == c else 0) for k, name in enumerate(generator.label_names)}
        candidates = generator.sample_features(wanted, seed=spec.seed * 1_000_003 + c)
        picked = PICKERS[spec.method](embed_set(embedding, candidates, device="cpu"),
                                      real_embedded[real.labels == c], int(n))
        kept.append(np.stack([candidates.utterance(int(i)) for i in picked]))
        labels.append(np.full(int(n), c))
    frames, dim = generator.config["model"]["frames"], generator.config["model"]["dim"]
    features = np.concatenate(kept) if kept else np.zeros((0, frames, dim), np.float32)
    return generator.feature_set(np.concatenate(labels) if labels else np.zeros(0, np.int64), features)


def provenance(generator: TrainedGenerator, ppc: int | Mapping[str, int], spec: SetSpec) -> dict:
    """What a written set records of how it was made."""
    return {"method": spec.method, "ppc": ppc if isinstance(ppc, int) else dict(ppc),
            "candidates": spec.candidates if spec.method in PICKERS else None, "seed": spec.seed,
            "match": spec.match.model_dump() if spec.method == "dm" else None,
            "generator": generator_digest(generator), "features": generator.config.get("features"),
            "data": generator.config.get("training", {}).get("data")}


def set_table(generator: TrainedGenerator, fs: FeatureSet, record: dict) -> pa.Table:
    """A distilled set as a feature table: the sample's schema, its provenance in the metadata."""
    meta = replace(generator.feature_meta, provenance=record)
    items = (({"utt_id": fs.utt_ids[i], "speaker": "synthetic", "gender": None, "session": None,
               "label": fs.label_names[fs.labels[i]]}, fs.utterance(i)) for i in range(len(fs)))
    return build_table(items, meta)


def write_distilled_set(generator: TrainedGenerator, real: FeatureSet, ppc: int | Mapping[str, int], spec: SetSpec,
                        path: str | Path, embedding: Downstream | None = None) -> Path:
    """Choose the budget's set (distilled_set) and write it atomically as an Arrow feature table at `path`."""
    fs = distilled_set(generator, real, ppc, spec, embedding)
    return write_table(set_table(generator, fs, provenance(generator, ppc, spec)), path)
