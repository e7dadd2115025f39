"""Emotionally neutral sentences from templates, so that the words never give the label away."""

from __future__ import annotations

import numpy as np

from emodistill.errors import ConfigError

_PEOPLE = (
    "the driver", "my neighbour", "our teacher", "the new manager", "her brother", "the doctor",
    "your cousin", "the old man", "a woman from the bank", "the children", "the committee", "his sister",
)
_THINGS = (
    "keys", "report", "letter", "boxes", "tickets", "car", "blue folder", "package", "lamp", "chairs",
    "photos", "umbrella", "map", "receipt", "bicycle", "notebook",
)
_PLACES = (
    "in the kitchen", "at the station", "near the window", "on the second floor", "by the front door",
    "in the garage", "at the office", "under the table", "next to the bakery", "in the car",
)
_TIMES = (
    "on Monday", "this afternoon", "before lunch", "after the meeting", "at six o'clock",
    "tomorrow morning", "last night", "on the weekend", "in two hours", "next Tuesday",
)
_VERBS = (  # (past tense, base form)
    ("moved", "move"), ("brought", "bring"), ("checked", "check"), ("left", "leave"),
    ("found", "find"), ("carried", "carry"), ("sent", "send"), ("cleaned", "clean"),
)
_TEMPLATES = (
    "{person} {past} the {thing} {place}.",
    "{person} {past} the {thing} {time}.",
    "Did {person} {base} the {thing} {time}?",
    "I think the {thing} {are} still {place}.",
    "{person} said the {thing} {are} {place}.",
    "We have to {base} the {thing} {time}.",
    "You told me {person} {past} the {thing}.",
    "The {thing} {are} {place}, and {person} knows it.",
)


def _render(template: str, person: str, thing: str, place: str, time: str, verb: tuple[str, str]) -> str:
    are = "are" if thing.endswith("s") else "is"
    text = template.format(
        person=person, thing=thing, place=place, time=time, past=verb[0], base=verb[1], are=are
    )
    return text[0].upper() + text[1:]


def sentence_pool(n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct sentences, each a random template filled with random words."""
    pool: dict[str, None] = {}
    for _ in range(50 * n):  # the templates make ~50k sentences: duplicates are rare below a few thousand
        if len(pool) == n:
            return list(pool)
        pool.setdefault(_render(
            _TEMPLATES[rng.integers(len(_TEMPLATES))], _PEOPLE[rng.integers(len(_PEOPLE))],
            _THINGS[rng.integers(len(_THINGS))], _PLACES[rng.integers(len(_PLACES))],
            _TIMES[rng.integers(len(_TIMES))], _VERBS[rng.integers(len(_VERBS))],
        ))
    raise ConfigError(f"n_sentences={n}: the sentence templates cannot make that many distinct sentences")
