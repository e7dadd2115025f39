"""SUPERB's leave-one-session-out folds: test on one session, split the others 80/20 into train/dev."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import NamedTuple

from emodistill.corpora.records import Utterance
from emodistill.errors import ConfigError, CorpusError


class Fold(NamedTuple):
    """The three splits of one fold (unpacks as `train, dev, test`)."""

    train: list[Utterance]
    dev: list[Utterance]
    test: list[Utterance]


def leave_one_session_out(records: Iterable[Utterance], test_session: int, dev_fraction: float = 0.2,
                          seed: int = 0) -> Fold:
    """Test on `test_session`; shuffle the other sessions (seeded, input order irrelevant) into train and dev."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    records = list(records)
    unsessioned = [r.utt_id for r in records if r.session is None]
    if unsessioned:
        raise CorpusError(f"{len(unsessioned)} records have no session (first: {unsessioned[0]}); "
                          "leave-one-session-out needs a session on every record")
    test = [r for r in records if r.session == test_session]
    if not test:
        present = sorted({r.session for r in records})
        raise CorpusError(f"no records in test session {test_session} (sessions present: {present})")
    # Sorting first makes the split a function of (record set, seed) alone, not of the loader's order.
    rest = sorted((r for r in records if r.session != test_session), key=lambda r: r.utt_id)
    random.Random(seed).shuffle(rest)
    # Truncating the train share reproduces SUPERB's fold 1: 3,556 train utterances out of 4,446.
    n_train = int(len(rest) * (1.0 - dev_fraction))
    return Fold(train=rest[:n_train], dev=rest[n_train:], test=test)
