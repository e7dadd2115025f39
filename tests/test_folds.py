"""SUPERB leave-one-session-out folds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from emodistill.corpora import Utterance, leave_one_session_out, load_iemocap
from emodistill.errors import ConfigError, CorpusError


def _records(n_per_session: int = 20) -> list[Utterance]:
    return [Utterance(utt_id=f"Ses0{s}F_impro01_F{i:03d}", path=Path(f"/x/{s}_{i}.wav"), speaker=f"Ses0{s}F",
                      gender="F", session=s, label="neu") for s in range(1, 6) for i in range(n_per_session)]


def _ids(records: list[Utterance]) -> list[str]:
    return [r.utt_id for r in records]


def test_fold_sizes_and_disjointness():
    records = _records()
    train, dev, test = leave_one_session_out(records, test_session=2)
    assert {r.session for r in test} == {2} and len(test) == 20
    assert (len(train), len(dev)) == (64, 16)
    assert 2 not in {r.session for r in train + dev}
    assert sorted(_ids(train + dev + test)) == sorted(_ids(records))


def test_train_share_is_truncated_like_superb_fold_1():
    # IEMOCAP: sessions 2-5 hold 4,446 utterances; SUPERB's fold 1 trains on 3,556 of them.
    records = [Utterance("Ses01F_x_F0000", Path("/x.wav"), "Ses01F", "F", 1, "neu")]
    records += [Utterance(f"Ses02F_x_F{i:04d}", Path("/x.wav"), "Ses02F", "F", 2, "neu") for i in range(4446)]
    fold = leave_one_session_out(records, test_session=1)
    assert (len(fold.train), len(fold.dev), len(fold.test)) == (3556, 890, 1)


def test_deterministic_independent_of_order_and_seeded():
    records = _records()
    fold = leave_one_session_out(records, test_session=1, seed=3)
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    again = leave_one_session_out(shuffled, test_session=1, seed=3)
    assert _ids(again.train) == _ids(fold.train) and _ids(again.dev) == _ids(fold.dev)
    other = leave_one_session_out(records, test_session=1, seed=4)
    assert set(_ids(other.dev)) != set(_ids(fold.dev))


def test_on_iemocap_tree(iemocap_root):
    records = load_iemocap(iemocap_root)
    train, dev, test = leave_one_session_out(records, test_session=1)
    assert len(test) == 8 and len(train) + len(dev) == len(records) - 8
    assert not {r.speaker for r in test} & {r.speaker for r in train + dev}


def test_errors():
    records = _records()
    with pytest.raises(CorpusError, match="no records in test session 6"):
        leave_one_session_out(records, test_session=6)
    with pytest.raises(ConfigError, match="dev_fraction"):
        leave_one_session_out(records, test_session=1, dev_fraction=1.0)
    unsessioned = records + [Utterance("a", Path("/a.wav"), "s", None, None, "neu")]
    with pytest.raises(CorpusError, match="no session"):
        leave_one_session_out(unsessioned, test_session=1)
