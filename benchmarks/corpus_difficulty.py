"""How hard is the embedded corpus? UAR of a linear probe on pooled fbank, sessions 2-5 -> session 1.

The corpus is calibrated so this lands well above chance (0.25) and far from perfect (0.55-0.80 on
the default preset): emotion must be learnable from prosody, not trivially separable.

    python benchmarks/corpus_difficulty.py --preset default --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from emodistill.corpora.audio import read_audio
from emodistill.corpora.synth import PRESETS, synthesize_corpus
from emodistill.features.fbank import FbankUpstream


def corpus_digest(records) -> str:
    """sha256 (16 hex) of every wav in record order: equal digests mean byte-identical corpora."""
    h = hashlib.sha256()
    for r in records:
        h.update(r.path.read_bytes())
    return h.hexdigest()[:16]


def pooled_fbank(records) -> np.ndarray:
    """Mean and standard deviation over time of each utterance's log-mel frames."""
    upstream = FbankUpstream()
    rows = []
    for r in tqdm(records, desc="fbank", unit="utt"):
        frames = upstream(read_audio(r.path, upstream.sample_rate))
        rows.append(np.concatenate([frames.mean(0), frames.std(0)]))
    return np.stack(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-session", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        records = synthesize_corpus(tmp, preset=args.preset, seed=args.seed)
        synth_s = time.perf_counter() - start
        digest = corpus_digest(records)
        x = pooled_fbank(records)
    y = np.array([r.label for r in records])
    test = np.array([r.session == args.test_session for r in records])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(x[~test], y[~test])
    uar = balanced_accuracy_score(y[test], probe.predict(x[test]))
    print(f"command: python {shlex.join(sys.argv)}")
    print(f"preset {args.preset} seed {args.seed}: {len(records)} utterances synthesised in {synth_s:.1f} s, "
          f"digest {digest}")
    print(f"UAR (session {args.test_session} held out, linear probe on mean+std fbank): {uar:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
