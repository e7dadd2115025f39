"""Feature tables on disk: round trip, validation, atomic writes, fingerprints, feature directories."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from emodistill.corpora.records import SUPERB_LABELS, Utterance
from emodistill.errors import FeatureTableError
from emodistill.features import store
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import METADATA_KEY, FeatureMeta
from emodistill.features.store import (build_table, dataset_fingerprint, fingerprint, load_splits, open_splits,
                                       read_table, split_summary, write_index, write_table)
from toy import toy_meta

DIM = 6


def make_meta(dtype: str = "float32", **changes) -> FeatureMeta:
    return toy_meta(DIM, labels=SUPERB_LABELS, upstream_config={"n_mels": DIM}, dtype=dtype, **changes)


def make_items(n: int = 5, seed: int = 0) -> list[tuple[Utterance, np.ndarray]]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        utt = Utterance(f"u{i}", Path(f"u{i}.wav"), speaker=f"s{i % 2}", gender="F" if i % 2 else None,
                        session=None if i == 0 else 1 + i % 2, label=SUPERB_LABELS[i % 4])
        items.append((utt, rng.standard_normal((3 + i, DIM)).astype(np.float32)))
    return items


def with_metadata(table: pa.Table, drop: tuple[str, ...] = (), **changes) -> pa.Table:
    """The table with keys of its `emodistill` metadata changed or dropped."""
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if k not in drop}
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, dtype):
    items = make_items()
    path = write_table(build_table(items, make_meta(dtype)), tmp_path / "train.arrow")
    table = read_table(path)
    fs = FeatureSet.from_table(table, str(path))
    assert fs.frames.dtype == np.dtype(dtype)
    assert fs.meta.dtype == dtype and fs.meta.dim == DIM
    assert list(fs.lengths) == [len(f) for _, f in items] == table.column("n_frames").to_pylist()
    assert fs.utt_ids == tuple(u.utt_id for u, _ in items)
    assert table.column("session").to_pylist() == [u.session for u, _ in items]
    assert table.column("gender").to_pylist() == [u.gender for u, _ in items]
    assert [fs.label_names[i] for i in fs.labels] == [u.label for u, _ in items]
    for i, (_, frames) in enumerate(items):
        np.testing.assert_array_equal(fs.utterance(i), frames.astype(dtype))


def test_build_table_from_dicts_and_empty():
    frames = np.ones((4, DIM), np.float32)
    table = build_table([({"utt_id": "g0", "label": "sad", "speaker": "synthetic"}, frames)], make_meta())
    assert table.column("session").to_pylist() == [None] and table.column("speaker").to_pylist() == ["synthetic"]
    assert build_table([], make_meta()).num_rows == 0


def test_build_table_rejects_bad_items():
    with pytest.raises(FeatureTableError, match=r"u0: frames have shape \(3, 5\), expected \(T, 6\)"):
        build_table([(make_items(1)[0][0], np.zeros((3, 5), np.float32))], make_meta())
    utt = replace(make_items(1)[0][0], label="fru")
    with pytest.raises(FeatureTableError, match="label 'fru' is not in the label set"):
        build_table([(utt, np.zeros((3, DIM), np.float32))], make_meta())


def test_read_table_is_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    items = [(utt, rng.standard_normal((2000, DIM)).astype(np.float32)) for utt, _ in make_items(20)]
    path = write_table(build_table(items, make_meta()), tmp_path / "big.arrow")
    before = pa.total_allocated_bytes()
    table = read_table(path)
    fs = FeatureSet.from_table(table)
    grown = pa.total_allocated_bytes() - before
    assert fs.frames.nbytes == 20 * 2000 * DIM * 4
    assert grown < fs.frames.nbytes / 100
    assert not fs.frames.flags.owndata


def test_validation_names_what_differs(tmp_path):
    table = build_table(make_items(), make_meta())
    bad_type = table.set_column(3, pa.field("session", pa.int64()), table.column("session").cast(pa.int64()))
    with pytest.raises(FeatureTableError, match="column 'session' has type int64, expected int32"):
        write_table(bad_type, tmp_path / "t.arrow")
    with pytest.raises(FeatureTableError, match="metadata 'emodistill': dim: Field required"):
        write_table(with_metadata(table, drop=("dim",)), tmp_path / "t.arrow")
    with pytest.raises(FeatureTableError, match=r"column 'label' has \['neu'\] not in the label set"):
        write_table(with_metadata(table, labels=["hap", "ang", "sad"]), tmp_path / "t.arrow")
    with pytest.raises(FeatureTableError, match="lacks the key 'emodistill'"):
        write_table(table.replace_schema_metadata(None), tmp_path / "t.arrow")
    with pytest.raises(FeatureTableError, match=r"'emodistill.labels' is \['neu', 'neu', 'hap', 'ang', 'sad'\], "
                                                "expected distinct label names"):
        write_table(with_metadata(table, labels=["neu", "neu", "hap", "ang", "sad"]), tmp_path / "t.arrow")
    assert not (tmp_path / "t.arrow").exists()


def test_read_table_errors(tmp_path):
    with pytest.raises(FeatureTableError, match="missing.arrow: feature table not found"):
        read_table(tmp_path / "missing.arrow")
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"not an arrow file at all")
    with pytest.raises(FeatureTableError, match="junk.arrow: not a readable Arrow IPC file"):
        read_table(junk)
    truncated = tmp_path / "truncated.arrow"
    truncated.write_bytes(write_table(build_table(make_items(), make_meta()), junk).read_bytes()[:300])
    with pytest.raises(FeatureTableError, match="truncated.arrow: not a readable Arrow IPC file"):
        read_table(truncated)


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = write_table(build_table(make_items(seed=0), make_meta()), tmp_path / "train.arrow")
    before = fingerprint(read_table(path))
    real_new_file = store.ipc.new_file

    def new_file_failing_mid_write(sink, schema):
        writer = real_new_file(sink, schema)
        real_write = writer.write_table

        class Failing:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                writer.close()

            def write_table(self, table):
                real_write(table.slice(0, 2))
                raise OSError("disk full")

        return Failing()

    monkeypatch.setattr(store.ipc, "new_file", new_file_failing_mid_write)
    with pytest.raises(OSError, match="disk full"):
        write_table(build_table(make_items(seed=1), make_meta()), path)
    assert fingerprint(read_table(path)) == before
    assert [p.name for p in tmp_path.iterdir()] == ["train.arrow"]


def test_fingerprint_is_stable(tmp_path):
    items = make_items()
    table = build_table(items, make_meta(created="2020-01-01T00:00:00+00:00"))
    again = build_table(items, make_meta(created="2026-01-01T00:00:00+00:00"))
    rechunked = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    from_disk = read_table(write_table(table, tmp_path / "t.arrow"))
    assert len(fingerprint(table)) == 16
    assert fingerprint(table) == fingerprint(again) == fingerprint(rechunked) == fingerprint(from_disk)


def test_fingerprint_is_sensitive():
    items = make_items()
    base = fingerprint(build_table(items, make_meta()))
    nudged = [(u, f.copy()) for u, f in items]
    nudged[-1][1][-1, -1] += 1e-3
    relabelled = [(replace(items[0][0], label="sad"), items[0][1])] + items[1:]
    variants = [build_table(nudged, make_meta()), build_table(relabelled, make_meta()),
                build_table(items, make_meta("float16")), build_table(items, make_meta(corpus="other")),
                build_table(items[:-1], make_meta())]
    prints = {fingerprint(t) for t in variants}
    assert base not in prints and len(prints) == len(variants)


def write_feature_dir(directory: Path, seeds=(0, 1, 2)) -> dict:
    """A feature directory as extraction writes it."""
    summaries = {}
    for split, seed in zip(store.SPLITS, seeds):
        table = build_table(make_items(seed=seed), make_meta(split=split))
        summaries[split] = split_summary(table, write_table(table, directory / f"{split}.arrow"), seconds=1.5)
    return write_index(directory, make_meta(), summaries)


def test_feature_directory(tmp_path):
    index = write_feature_dir(tmp_path)
    tables = open_splits(tmp_path)
    assert list(tables) == ["train", "dev", "test"]
    assert {s: fingerprint(t) for s, t in tables.items()} == {s: e["fingerprint"] for s, e in index["splits"].items()}
    assert index["splits"]["train"]["counts"] == {"neu": 2, "hap": 1, "ang": 1, "sad": 1}
    assert index["splits"]["train"]["frames"] == 3 + 4 + 5 + 6 + 7
    sets = load_splits(tmp_path)
    assert len(sets["dev"]) == 5 and sets["test"].meta.split == "test"
    assert dataset_fingerprint(tmp_path) == index["fingerprint"]
    assert write_feature_dir(tmp_path)["fingerprint"] == index["fingerprint"]
    assert write_feature_dir(tmp_path, seeds=(0, 1, 3))["fingerprint"] != index["fingerprint"]


def test_feature_directory_errors(tmp_path):
    with pytest.raises(FeatureTableError, match="nowhere: feature directory not found"):
        open_splits(tmp_path / "nowhere")
    with pytest.raises(FeatureTableError, match="features.json: index not found"):
        open_splits(tmp_path)
    write_feature_dir(tmp_path)
    (tmp_path / "dev.arrow").unlink()
    with pytest.raises(FeatureTableError, match=r"dev.arrow: split 'dev' missing from feature directory"):
        load_splits(tmp_path)
    write_feature_dir(tmp_path)
    # A table replaced after its index was written (an interrupted re-extraction) is refused.
    write_table(build_table(make_items(7, seed=5), make_meta(split="test")), tmp_path / "test.arrow")
    with pytest.raises(FeatureTableError, match="test.arrow: does not match features.json"):
        open_splits(tmp_path)
    index = json.loads((tmp_path / "features.json").read_text())
    del index["splits"]["dev"]["bytes"]
    (tmp_path / "features.json").write_text(json.dumps(index))
    with pytest.raises(FeatureTableError, match="features.json: splits.dev.bytes: Field required"):
        open_splits(tmp_path)
    (tmp_path / "features.json").write_text("{")
    with pytest.raises(FeatureTableError, match="features.json: Invalid JSON"):
        dataset_fingerprint(tmp_path)


@pytest.mark.parametrize("layout", ["fixed splits", "folds"])
def test_each_table_is_validated_once_when_opened(tmp_path, monkeypatch, layout):
    from emodistill.features import dataset, schema
    from sweep_fixtures import make_corpus_dir, make_feature_dir

    directory = (make_feature_dir if layout == "fixed splits" else make_corpus_dir)(tmp_path / "features")
    checked = []

    def counting(table, source):
        checked.append(source)
        return schema.validate_table(table, source)

    monkeypatch.setattr(store, "validate_table", counting)
    monkeypatch.setattr(dataset, "validate_table", counting)
    splits = load_splits(directory, None if layout == "fixed splits" else 2)
    tables = ["train", "dev", "test"] if layout == "fixed splits" else ["corpus"]
    assert sorted(Path(source).stem for source in checked) == sorted(tables)
    assert all(fs.meta.dim == splits["train"].dim for fs in splits.values())
    if layout == "folds":  # a sweep's folds: the table opened and checked once for all of them
        checked.clear()
        assert list(store.load_folds(directory, [1, 2, 3])) == [1, 2, 3] and len(checked) == 1


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("chunks", [1, 2])
def test_non_finite_frames_are_refused_naming_the_utterance(tmp_path, value, chunks):
    items = make_items()
    items[3][1][4, 2] = value  # utterance u3, frame 4
    table = build_table(items, make_meta())
    if chunks == 2:  # the check walks the chunks of a table written in batches
        table = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    path = write_table(table, tmp_path / "train.arrow")
    with pytest.raises(FeatureTableError, match=r"train.arrow: utterance 'u3' has a NaN or infinite value in frame 4"):
        read_table(path)


def test_huge_finite_values_are_not_taken_for_infinities(tmp_path):
    items = make_items()
    for _, frames in items:
        frames[:] = np.finfo(np.float32).max
    assert read_table(write_table(build_table(items, make_meta()), tmp_path / "train.arrow")).num_rows == 5
