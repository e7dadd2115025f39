"""Tiny inputs for the sweep tests: a class-dependent random feature directory and micro search spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from emodistill.features.schema import FeatureMeta
from emodistill.features.store import SPLITS, build_table, split_summary, write_index, write_table

LABELS = ("neu", "hap", "ang", "sad")
DIM = 16
SPLIT_SIZES = {"train": 32, "dev": 12, "test": 16}
REPO = Path(__file__).resolve().parents[1]


def make_feature_dir(directory: Path, seed: int = 0) -> Path:
    """train/dev/test tables whose frames are noise around a per-class mean (so a downstream can learn them)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (len(LABELS), DIM))
    summaries = {}
    for split in SPLITS:
        meta = FeatureMeta(corpus="toy", upstream="fbank", upstream_config={}, layer=None, sample_rate=16000,
                           frame_rate=100.0, dim=DIM, labels=list(LABELS), split=split)
        items = []
        for i in range(SPLIT_SIZES[split]):
            label = i % len(LABELS)
            frames = centres[label] + rng.normal(0.0, 0.5, (int(rng.integers(24, 48)), DIM))
            record = {"utt_id": f"{split}{i:03d}", "speaker": f"spk{i % 4}", "label": LABELS[label], "session": 1}
            items.append((record, frames))
        table = build_table(items, meta)
        summaries[split] = split_summary(table, write_table(table, directory / f"{split}.arrow"))
    write_index(directory, meta, summaries)
    return directory


def micro_space(path: Path, **changes) -> Path:
    """search_spaces/smoke.yaml shrunk for tests (frames 16 to fit DIM), with top-level `changes`; returns its path."""
    space = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    space["base"]["overrides"].update({"model.frames": 16, "train.device": "cpu"})
    space["evaluation"]["downstream"].update({"max_steps": 10, "eval_every": 5})
    space.update(changes)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path
