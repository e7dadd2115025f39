"""SUPERB's leave-one-session-out folds: test on one session, split the others 80/20 into train/dev."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from emodistill.corpora.records import Utterance
from emodistill.errors import ConfigError, CorpusError


class Fold(NamedTuple):
    """The three splits of one fold (unpacks as `train, dev, test`)."""

    train: list[Utterance]
    dev: list[Utterance]
    test: list[Utterance]


class FoldIndex(NamedTuple):
    """Row positions of one fold's splits in a list of utterances (unpacks as `train, dev, test`)."""

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray


def fold_index(utt_ids: Sequence[str], sessions: Sequence[int | None], test_session: int,
               dev_fraction: float = 0.2, seed: int = 0) -> FoldIndex:
    """Positions of the train/dev/test utterances of the fold testing on `test_session`.

    Test keeps the input order; train and dev are the other sessions sorted by utterance id, shuffled (seeded)
    and cut at `1 - dev_fraction`: the one definition both leave_one_session_out and a feature directory's folds
    use, so a fold chosen when the features are loaded is the fold chosen on the records.
    """
    if not 0.0 <= dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    unsessioned = [u for u, s in zip(utt_ids, sessions) if s is None]
    if unsessioned:
        raise CorpusError(f"{len(unsessioned)} records have no session (first: {unsessioned[0]}); "
                          "leave-one-session-out needs a session on every record")
    test = [i for i, s in enumerate(sessions) if s == test_session]
    if not test:
        raise CorpusError(f"no records in test session {test_session} (sessions present: {sorted(set(sessions))})")
    # Sorting first makes the split a function of (record set, seed) alone, not of the loader's order.
    rest = sorted((i for i, s in enumerate(sessions) if s != test_session), key=lambda i: utt_ids[i])
    random.Random(seed).shuffle(rest)
    # Truncating the train share reproduces SUPERB's fold 1: 3,556 train utterances out of 4,446.
    n_train = int(len(rest) * (1.0 - dev_fraction))
    return FoldIndex(*(np.asarray(p, dtype=np.int64) for p in (rest[:n_train], rest[n_train:], test)))


def leave_one_session_out(records: Iterable[Utterance], test_session: int, dev_fraction: float = 0.2,
                          seed: int = 0) -> Fold:
    """Test on `test_session`; shuffle the other sessions (seeded, input order irrelevant) into train and dev."""
    records = list(records)
    index = fold_index([r.utt_id for r in records], [r.session for r in records], test_session, dev_fraction, seed)
    return Fold(*([records[i] for i in positions] for positions in index))
