"""How a sweep names its trials and their MLflow params: the parts of a trial's name, its index, its fold's param."""

from __future__ import annotations

FOLD_PARAM = "fold"  # a trial's (and a reference's) fold, a param of its MLflow run; none for fixed splits
SEPARATOR = " · "
REPEAT_PARTS = ("seed ", "fold ", "#")  # the parts of a trial's name that tell repeats of one setting apart


def trial_index(trial_id: str) -> int:
    """The trial's position in the sweep (Tune ids end in a zero-padded counter: `6bfac_00003` -> 3)."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def setting_name(name: str) -> str:
    """A trial's name without what only repeats it (`seed 1`, `#3`): the trials of one setting share a row of the
    sweep report."""
    return SEPARATOR.join(part for part in name.split(SEPARATOR) if not part.startswith(REPEAT_PARTS))
