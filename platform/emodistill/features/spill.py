"""Frames spilled to disk while a table is extracted, so that memory holds one batch of frames, not the corpus.

Utterances are extracted in batches of similar length, not in the table's row order: their frames are appended
to a scratch file as they come, then copied in row order into a second one that the table's frames column
memory-maps. The table is written as one record batch, as before, so that reading it stays zero-copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from emodistill.corpora.records import Utterance
from emodistill.errors import FeatureTableError
from emodistill.features.schema import DTYPES, FeatureMeta
from emodistill.features.store import assemble_table, checked_frames, record_fields

COPY_BYTES = 64 * 2**20  # what the row-order copy reads and writes at once


class FrameSpill:
    """The frames of `records` (a table's rows), added in any order, as a table in row order (see the module)."""

    def __init__(self, records: Sequence[Utterance], meta: FeatureMeta, scratch: Path):
        self.rows = [record_fields(record) for record in records]
        self.meta, self.scratch = meta, scratch
        self.row_bytes = meta.dim * np.dtype(meta.dtype).itemsize
        self.start = np.full(len(records), -1, np.int64)  # where each row's frames begin in the scratch file
        self.length = np.zeros(len(records), np.int64)
        self.added = 0
        self.file = open(scratch.with_suffix(".unordered"), "wb")

    def add(self, row: int, frames: np.ndarray) -> None:
        """Append row `row`'s frames (T, D), checked and cast as build_table does."""
        frames = np.ascontiguousarray(checked_frames(self.rows[row], frames, self.meta))
        self.start[row], self.length[row] = self.added, len(frames)
        self.file.write(memoryview(frames).cast("B"))
        self.added += len(frames)

    def table(self) -> pa.Table:
        """The table of every row, its frames memory-mapped from the scratch folder (the files are removed when the
        spill closes: the mapping lives as long as the table)."""
        self.file.close()
        unordered, ordered = Path(self.file.name), self.scratch.with_suffix(".ordered")
        missing = np.flatnonzero(self.start < 0)
        if len(missing):
            raise FeatureTableError(f"{self.rows[missing[0]]['utt_id']}: no frames were extracted")
        with open(unordered, "rb") as source, open(ordered, "wb") as target:
            for row in range(len(self.rows)):
                offset, left = self.start[row] * self.row_bytes, self.length[row] * self.row_bytes
                while left:  # one utterance exceeds COPY_BYTES only in a corpus of hour-long files
                    chunk = os.pread(source.fileno(), min(left, COPY_BYTES), offset)
                    target.write(chunk)
                    offset, left = offset + len(chunk), left - len(chunk)
        unordered.unlink()
        values = pa.memory_map(str(ordered)).read_buffer()
        flat = pa.Array.from_buffers(DTYPES[self.meta.dtype], self.added * self.meta.dim, [None, values])
        return assemble_table(self.rows, self.length, flat, self.meta)

    def __enter__(self) -> FrameSpill:
        return self

    def __exit__(self, *exc) -> None:
        """Close and remove the scratch files, whether or not the table was made."""
        self.file.close()
        for suffix in (".unordered", ".ordered"):
            self.scratch.with_suffix(suffix).unlink(missing_ok=True)
