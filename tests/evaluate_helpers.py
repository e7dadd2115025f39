"""Micro inputs for the evaluation tests: separable real splits with speakers, a feature dir, a generator."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from emodistill.downstream import DownstreamConfig
from emodistill.features.dataset import FeatureSet
from emodistill.features.store import build_table, split_summary, write_index, write_table
from toy import LABELS, save_micro_generator, toy_meta

DIM = 12
SPEAKERS = ("s1F", "s1M", "s2F", "s2M")
META = toy_meta(DIM, upstream="toy")


def split_table(counts, seed: int, split: str) -> pa.Table:
    """Utterances per class `counts`; class c lifts feature dim c, each speaker lifts dim 4 + its index."""
    rng = np.random.default_rng(seed)
    items = []
    for c, n in enumerate(counts):
        for i in range(n):
            speaker = int(rng.integers(len(SPEAKERS)))
            frames = rng.normal(0, 1, (int(rng.integers(6, 14)), DIM))
            frames[:, c] += 2.5
            frames[:, 4 + speaker] += 2.5
            record = {"utt_id": f"{split}_{LABELS[c]}_{i}", "speaker": SPEAKERS[speaker], "gender": None,
                      "session": 1, "label": LABELS[c]}
            items.append((record, frames))
    return build_table(items, replace(META, split=split))


def split_tables() -> dict[str, pa.Table]:
    """An imbalanced train split (prior 0.4/0.3/0.2/0.1), a small dev and test split."""
    return {"train": split_table((16, 12, 8, 4), 0, "train"), "dev": split_table((4, 4, 4, 4), 1, "dev"),
            "test": split_table((6, 6, 6, 6), 2, "test")}


def toy_splits() -> dict[str, FeatureSet]:
    """The splits of split_tables as FeatureSets."""
    return {name: FeatureSet.from_table(table) for name, table in split_tables().items()}


def write_feature_dir(directory: Path) -> Path:
    """A feature directory (train/dev/test.arrow + features.json) holding split_tables."""
    summaries = {}
    for name, table in split_tables().items():
        path = write_table(table, directory / f"{name}.arrow")
        summaries[name] = split_summary(table, path)
    write_index(directory, META, summaries)
    return directory


def micro_generator(out_dir: Path, seed: int = 0) -> Path:
    """An untrained micro GAN-CNN saved as a generator artifact with the toy label set and prior."""
    return save_micro_generator(out_dir, DIM, seed=seed, meta=META)[1]


def quick_downstream(**overrides) -> DownstreamConfig:
    """A few CPU steps of a narrow downstream."""
    return DownstreamConfig(**{"lr": 1e-2, "batch_size": 8, "max_steps": 4, "eval_every": 2, "device": "cpu",
                               "hidden": 16, **overrides})
