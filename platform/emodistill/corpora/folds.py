"""SUPERB's leave-one-session-out folds: test on one session, split the others 80/20 into train/dev.

The dev split is cut by utterance (SUPERB's, s3prl's: dev shares the training speakers) or by speaker (whole
training speakers held out, so that dev speakers, like test speakers, are unseen: `dev_by="speaker"`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np

from emodistill.corpora.records import Utterance
from emodistill.errors import ConfigError, CorpusError


class Fold(NamedTuple):
    """The three splits of one fold (unpacks as `train, dev, test`)."""

    train: list[Utterance]
    dev: list[Utterance]
    test: list[Utterance]


DevBy = Literal["utterance", "speaker"]
DEV_BY = ("utterance", "speaker")


class FoldIndex(NamedTuple):
    """Row positions of one fold's splits in a list of utterances (unpacks as `train, dev, test`)."""

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray


def fold_index(utt_ids: Sequence[str], sessions: Sequence[int | None], test_session: int,
               dev_fraction: float = 0.2, seed: int = 0, speakers: Sequence[str | None] | None = None,
               dev_by: DevBy = "utterance") -> FoldIndex:
    """Positions of the train/dev/test utterances of the fold testing on `test_session`.

    Test keeps the input order; train and dev are the other sessions sorted by utterance id, shuffled (seeded)
    and cut at `1 - dev_fraction`: the one definition both leave_one_session_out and a feature directory's folds
    use, so a fold chosen when the features are loaded is the fold chosen on the records. With dev_by "speaker"
    (`speakers` given), whole speakers of the other sessions go to dev instead (see speaker_dev_split).
    """
    if not 0.0 <= dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    if dev_by not in DEV_BY:
        raise ConfigError(f"dev_by must be one of {list(DEV_BY)}, got {dev_by!r}")
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
    if dev_by == "speaker":
        if speakers is None:
            raise ConfigError("dev_by speaker needs the utterances' speakers")
        train, dev = speaker_dev_split(rest, [speakers[i] for i in rest], [utt_ids[i] for i in rest], dev_fraction,
                                       seed)
    else:
        # Truncating the train share reproduces SUPERB's fold 1: 3,556 train utterances out of 4,446.
        n_train = int(len(rest) * (1.0 - dev_fraction))
        train, dev = rest[:n_train], rest[n_train:]
    return FoldIndex(*(np.asarray(p, dtype=np.int64) for p in (train, dev, test)))


def speaker_dev_split(positions: list[int], speakers: list[str | None], utt_ids: list[str], dev_fraction: float,
                      seed: int) -> tuple[list[int], list[int]]:
    """(train, dev) of `positions` with whole speakers in dev: the speakers, in a seeded order, are taken for dev
    one by one while that brings dev's share of the utterances closer to `dev_fraction` (at least one speaker when
    dev_fraction > 0, and never all of them). Both keep the order of `positions`."""
    unknown = [u for u, s in zip(utt_ids, speakers) if s is None]
    if unknown:
        raise CorpusError(f"{len(unknown)} records have no speaker (first: {unknown[0]}); dev_by speaker holds "
                          "out whole speakers, so it needs a speaker on every record")
    counts: dict[str, int] = {}
    for speaker in speakers:
        counts[speaker] = counts.get(speaker, 0) + 1
    order = sorted(counts)
    random.Random(seed).shuffle(order)
    target, held, dev_speakers = dev_fraction * len(positions), 0, set()
    for speaker in order[:-1]:  # one speaker at least stays in train
        closer = abs(held + counts[speaker] - target) < abs(held - target)
        if dev_fraction > 0 and (not dev_speakers or closer):
            dev_speakers.add(speaker)
            held += counts[speaker]
        elif not closer:
            break
    if dev_fraction > 0 and not dev_speakers:
        raise CorpusError(f"dev_by speaker needs at least two speakers outside the test session, got {order}")
    train = [p for p, s in zip(positions, speakers) if s not in dev_speakers]
    dev = [p for p, s in zip(positions, speakers) if s in dev_speakers]
    return train, dev


def leave_one_session_out(records: Iterable[Utterance], test_session: int, dev_fraction: float = 0.2,
                          seed: int = 0, dev_by: DevBy = "utterance") -> Fold:
    """Test on `test_session`; shuffle the other sessions (seeded, input order irrelevant) into train and dev, by
    utterance (SUPERB) or by speaker (`dev_by="speaker"`: no dev speaker in train)."""
    records = list(records)
    index = fold_index([r.utt_id for r in records], [r.session for r in records], test_session, dev_fraction, seed,
                       speakers=[r.speaker for r in records], dev_by=dev_by)
    return Fold(*([records[i] for i in positions] for positions in index))
