"""A zero-copy numpy view of a feature table, the form every trainer and evaluator consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from emodistill.features.schema import FeatureMeta, validate_table


@dataclass(frozen=True)
class FeatureSet:
    """Utterances of one split: frames of all utterances back to back, with offsets."""

    frames: np.ndarray  # (total_frames, D), a view of the Arrow buffer when possible
    offsets: np.ndarray  # (N + 1,) int64; utterance i is frames[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # (N,) int64 indexes into label_names
    label_names: tuple[str, ...]
    speakers: tuple[str | None, ...]
    utt_ids: tuple[str, ...]
    meta: FeatureMeta

    @classmethod
    def from_table(cls, table: pa.Table, source: str = "<table>") -> FeatureSet:
        """View a validated feature table without copying the frame data."""
        meta = validate_table(table, source)
        column = table.column("features")
        # combine_chunks() copies even a lone chunk; only a multi-chunk table needs it.
        feats = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        # list<fixed_size_list<float, D>>: the inner values are one contiguous float buffer.
        inner = feats.flatten()
        values = inner.flatten().to_numpy(zero_copy_only=False)
        frames = values.reshape(-1, meta.dim)
        offsets = feats.offsets.to_numpy().astype(np.int64)
        offsets = offsets - offsets[0]
        index = {name: i for i, name in enumerate(meta.labels)}
        labels = np.array([index[x] for x in table.column("label").to_pylist()], dtype=np.int64)
        return cls(
            frames=frames,
            offsets=offsets,
            labels=labels,
            label_names=tuple(meta.labels),
            speakers=tuple(table.column("speaker").to_pylist()),
            utt_ids=tuple(table.column("utt_id").to_pylist()),
            meta=meta,
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.frames.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """Frames per utterance."""
        return np.diff(self.offsets)

    def utterance(self, i: int) -> np.ndarray:
        """Frames (T_i, D) of utterance i."""
        return self.frames[self.offsets[i]:self.offsets[i + 1]]

    def class_counts(self) -> np.ndarray:
        """Utterances per class, in label order."""
        return np.bincount(self.labels, minlength=len(self.label_names))

    def subset(self, index: np.ndarray) -> FeatureSet:
        """A new FeatureSet holding the utterances at `index` (copies their frames)."""
        index = np.asarray(index, dtype=np.int64)
        parts = [self.utterance(i) for i in index]
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        frames = np.concatenate(parts) if parts else np.zeros((0, self.dim), self.frames.dtype)
        return FeatureSet(
            frames=frames,
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            labels=self.labels[index],
            label_names=self.label_names,
            speakers=tuple(self.speakers[i] for i in index),
            utt_ids=tuple(self.utt_ids[i] for i in index),
            meta=self.meta,
        )
