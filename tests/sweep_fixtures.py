"""Inputs for the sweep tests and benchmarks/sweep_overhead.py: class-dependent random features, micro spaces;
and what Tune's driver recorded of a trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from emodistill.features.store import CORPUS, SPLITS, build_table, split_summary, write_index, write_table
from toy import LABELS, toy_meta

DIM = 16
SPLIT_SIZES = {"train": 32, "dev": 12, "test": 16}
REPO = Path(__file__).resolve().parents[1]


def make_feature_dir(directory: Path, seed: int = 0, sizes: dict[str, int] = SPLIT_SIZES, dim: int = DIM,
                     frames: tuple[int, int] = (24, 48)) -> Path:
    """train/dev/test tables whose frames are noise around a per-class mean (so a downstream can learn them)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (len(LABELS), dim))
    summaries = {}
    for split in SPLITS:
        meta = toy_meta(dim, split=split)
        items = []
        for i in range(sizes[split]):
            label = i % len(LABELS)
            length = int(rng.integers(*frames))
            values = centres[label] + rng.normal(0.0, 0.5, (length, dim)).astype(np.float32)
            record = {"utt_id": f"{split}{i:05d}", "speaker": f"spk{i % 4}", "label": LABELS[label], "session": 1}
            items.append((record, values))
        table = build_table(items, meta)
        summaries[split] = split_summary(table, write_table(table, directory / f"{split}.arrow"))
    write_index(directory, meta, summaries)
    return directory


def make_corpus_dir(directory: Path, seed: int = 0, sessions: int = 5, per_session: int = 12, dim: int = DIM,
                    frames: tuple[int, int] = (24, 48), dev_fraction: float = 0.2,
                    nan_utterance: str | None = None) -> Path:
    """A whole-corpus table with `sessions` sessions (folds chosen at load), frames as in make_feature_dir; the
    utterance `nan_utterance` (an utt_id such as s1_003) gets a NaN in its third frame."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (len(LABELS), dim))
    meta = toy_meta(dim)
    items = []
    for session in range(1, sessions + 1):
        for i in range(per_session):
            label = i % len(LABELS)
            values = centres[label] + rng.normal(0.0, 0.5, (int(rng.integers(*frames)), dim)).astype(np.float32)
            if f"s{session}_{i:03d}" == nan_utterance:
                values[2, 0] = np.nan
            items.append(({"utt_id": f"s{session}_{i:03d}", "speaker": f"spk{session}{i % 2}", "label": LABELS[label],
                           "session": session}, values))
    table = build_table(items, meta)
    summary = split_summary(table, write_table(table, directory / f"{CORPUS}.arrow"))
    folds = {"sessions": {str(s): per_session for s in range(1, sessions + 1)}, "dev_fraction": dev_fraction,
             "seed": 0}
    write_index(directory, meta, {CORPUS: summary}, folds)
    return directory


def micro_space(path: Path, **changes) -> Path:
    """search_spaces/smoke.yaml shrunk for tests (4 steps, frames 16), with top-level `changes`; returns its path."""
    space = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    space["base"]["overrides"].update({"model.frames": 16, "train.device": "cpu", "train.steps": 4,
                                       "train.eval_every": 2, "train.log_every": 1, "pool.k": 1,
                                       "pool.points": ["converged"], "pool.downstream.max_steps": 20,
                                       "pool.downstream.eval_every": 10})
    space["evaluation"]["downstream"].update({"max_steps": 10, "eval_every": 5})
    space.update(changes)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def processed_reports(result_json: str) -> list[dict]:
    """The reports of a trial that Tune's driver has processed: the complete rows of its result.json text.

    The driver saves a report's checkpoint before it asks for the next report, so a second row means the first
    checkpoint is Tune's to restore. Tune adds the worker's pid to every row.
    """
    rows = []
    for line in result_json.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the row being written
            break
    return rows
