"""A miniature IEMOCAP tree in the real on-disk format, with tiny real wav files, and what loading it must give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
SPAN = 1.2345  # seconds each summary line spans; the loaded duration comes from it, not from the wav

# Per dialog kind: (lead actor, [(last id token, emotion code)]). Lines spoken by the other actor (M in an
# F-led dialog) check that the speaker comes from the last token, not from the dialog name.
DIALOGS = {
    "impro01": ("F", [("F000", "neu"), ("M000", "ang"), ("F001", "exc"), ("M001", "xxx"), ("F002", "sad"),
                      ("M002", "hap")]),
    "script01_1": ("M", [("M000", "fru"), ("F000", "sur"), ("M001", "neu"), ("F001", "sad"), ("M002", "exc")]),
}
MISSING_WAV = "Ses02F_impro01_F002"  # labelled `sad`, but its wav is not on disk

# What load_iemocap must return for the full tree (5 sessions, MISSING_WAV skipped).
KEPT_PER_SESSION = 8
EXPECTED_LABELS = {"neu": 10, "hap": 15, "ang": 5, "sad": 9}
EXPECTED_TOTAL = 39

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
ANNOTATIONS = ("C-E1:\tAnger;\t()\nC-E2:\tNeutral;\t(curious)\n"
               "A-E3:\tval 2; act 4; dom 4;\t()\nA-F1:\tval 3; act 2; dom  2;\t(mildly aggravated)\n\n")


def dialog_name(session: int, kind: str) -> str:
    """`Ses01F_impro01` for session 1's impro dialog."""
    return f"Ses0{session}{DIALOGS[kind][0]}_{kind}"


def make_iemocap_tree(root: Path, sessions: tuple[int, ...] = (1, 2, 3, 4, 5)) -> Path:
    """Write the miniature corpus under `root` and return `root`."""
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(int(0.3 * SAMPLE_RATE))).astype(np.float32)
    for session in sessions:
        label_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        (label_dir / "Categorical").mkdir(parents=True)  # real trees hold sub-folders beside the label files
        for kind, (_, lines) in DIALOGS.items():
            dialog = dialog_name(session, kind)
            wav_dir = root / f"Session{session}" / "sentences" / "wav" / dialog
            wav_dir.mkdir(parents=True)
            text = HEADER
            for i, (token, code) in enumerate(lines):
                utt_id = f"{dialog}_{token}"
                start = 3.0 + 4.0 * i
                text += f"[{start:.4f} - {start + SPAN:.4f}]\t{utt_id}\t{code}\t[2.5000, 3.0000, 3.5000]\n"
                text += ANNOTATIONS
                if utt_id != MISSING_WAV:
                    sf.write(wav_dir / f"{utt_id}.wav", noise, SAMPLE_RATE, subtype="PCM_16")
            (label_dir / f"{dialog}.txt").write_text(text)
    return root
