"""A zero-copy numpy view of a feature table, the form every trainer and evaluator consumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from emodistill.features.schema import FeatureMeta, validate_table


@dataclass(frozen=True)
class FeatureSet:
    """Utterances of one split: where each one's frames lie in a frame buffer, and its label, speaker and id.

    The buffer may hold frames of other utterances too: a fold's splits are selections of one whole-corpus table
    (`subset`), so none of them copies frames. Code that wants this set's frames alone reads them through
    `utterance`, `frame_rows` or `frame_chunks`, never `frames` as a whole.
    """

    frames: np.ndarray  # (F, D), a view of the Arrow buffer when possible; may hold frames of other utterances
    starts: np.ndarray  # (N,) int64; utterance i is frames[starts[i]:ends[i]]
    ends: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64 indexes into label_names
    label_names: tuple[str, ...]
    speakers: tuple[str | None, ...]
    utt_ids: tuple[str, ...]
    meta: FeatureMeta

    @classmethod
    def packed(cls, frames: np.ndarray, offsets: np.ndarray, labels: np.ndarray, label_names: tuple[str, ...],
               speakers: tuple[str | None, ...], utt_ids: tuple[str, ...], meta: FeatureMeta) -> FeatureSet:
        """Utterances stored back to back: utterance i is frames[offsets[i]:offsets[i + 1]]."""
        offsets = np.asarray(offsets, dtype=np.int64)
        return cls(frames=frames, starts=offsets[:-1], ends=offsets[1:], labels=labels, label_names=label_names,
                   speakers=speakers, utt_ids=utt_ids, meta=meta)

    @classmethod
    def from_table(cls, table: pa.Table, source: str = "<table>", meta: FeatureMeta | None = None) -> FeatureSet:
        """View a feature table without copying the frame data; it is validated unless `meta` is given.

        `meta` is what validate_table returned where the table was opened: a table is checked once, there, not
        again by every view of it (a trial's view of a table the driver checked before sharing it, for one).
        """
        meta = validate_table(table, source) if meta is None else meta
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
        return cls.packed(frames, offsets, labels, tuple(meta.labels), tuple(table.column("speaker").to_pylist()),
                          tuple(table.column("utt_id").to_pylist()), meta)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.frames.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """Frames per utterance."""
        return self.ends - self.starts

    @property
    def n_frames(self) -> int:
        """Frames of all its utterances together."""
        return int(self.lengths.sum())

    @property
    def nbytes(self) -> int:
        """Bytes of its utterances' frames (not of the whole buffer they lie in)."""
        return self.n_frames * self.dim * self.frames.dtype.itemsize

    def utterance(self, i: int) -> np.ndarray:
        """Frames (T_i, D) of utterance i."""
        return self.frames[self.starts[i]:self.ends[i]]

    def frame_rows(self) -> np.ndarray:
        """(n_frames,) int64: the buffer rows of its utterances' frames, utterance after utterance."""
        lengths = self.lengths
        shift = np.repeat(self.starts - (np.cumsum(lengths) - lengths), lengths)
        return np.arange(len(shift), dtype=np.int64) + shift

    def frame_chunks(self, size: int) -> Iterator[np.ndarray]:
        """Its frames, utterance after utterance, in blocks of `size` frames (the last shorter): slices of the
        buffer when the utterances lie back to back in it, else copies of one block at a time."""
        if self.is_packed():
            first = int(self.starts[0]) if len(self) else 0
            for start in range(0, self.n_frames, size):
                yield self.frames[first + start:first + min(start + size, self.n_frames)]
            return
        rows = self.frame_rows()
        for start in range(0, len(rows), size):
            yield self.frames[rows[start:start + size]]

    def is_packed(self) -> bool:
        """True when its utterances lie back to back, in order, in the buffer."""
        return bool(np.array_equal(self.starts[1:], self.ends[:-1]))

    def class_counts(self) -> np.ndarray:
        """Utterances per class, in label order."""
        return np.bincount(self.labels, minlength=len(self.label_names))

    def subset(self, index: np.ndarray) -> FeatureSet:
        """A new FeatureSet holding the utterances at `index`, in that order (a view: no frame is copied)."""
        index = np.asarray(index, dtype=np.int64)
        return FeatureSet(
            frames=self.frames,
            starts=self.starts[index],
            ends=self.ends[index],
            labels=self.labels[index],
            label_names=self.label_names,
            speakers=tuple(self.speakers[i] for i in index),
            utt_ids=tuple(self.utt_ids[i] for i in index),
            meta=self.meta,
        )
