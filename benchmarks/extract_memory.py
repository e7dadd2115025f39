"""Peak memory of `extract_features` with a D = 768 upstream (a tiny random HuBERT of HuBERT Base's width, built
here), at three corpus sizes (x1, x2, x4): streamed, the anonymous memory (what the process itself holds: frames,
model, Python) stays near a batch's worth whatever the corpus size, where holding the corpus would grow with it.

The extraction runs in a child process that the parent samples every 10 ms: RssAnon (anonymous resident memory)
is the measure; the table's frames are memory-mapped from disk while it is written and hashed, so VmHWM (which
counts those clean, reclaimable file pages too) is shown beside it.

Run: python benchmarks/extract_memory.py [--utterances 150] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RESULTS = Path(__file__).resolve().parent / "results" / "extract_memory.json"
DIM = 768
CHILD = """
import sys
from emodistill.corpora.manifest import load_manifest
from emodistill.features.extract import extract_features
from emodistill.features.upstream import make_upstream
upstream = make_upstream("hf", model=sys.argv[1], layer="last", device="cpu", batch_size=4)
extract_features(load_manifest(sys.argv[2], strict=True), upstream, sys.argv[3], "noise", progress=False)
"""


def tiny_hubert(directory: Path) -> Path:
    """A random 1-layer HuBERT with 768-dimensional frames (narrow convolutions, so that CPU time stays small)."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=DIM, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
                          conv_dim=(32,) * 7, feat_extract_norm="layer", num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=2)
    HubertModel(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(directory)
    return directory


def noise_corpus(directory: Path, utterances: int, seconds: float) -> Path:
    """`utterances` wavs of noise (lengths around `seconds`) in 5 sessions, and their corpus.csv."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    rows = ["path,label,speaker,session"]
    for i in range(utterances):
        length = int(16000 * seconds * rng.uniform(0.5, 1.5))
        sf.write(directory / f"u{i:05d}.wav", (0.1 * rng.standard_normal(length)).astype(np.float32), 16000)
        rows.append(f"u{i:05d}.wav,{('neu', 'hap', 'ang', 'sad')[i % 4]},s{i % 10},{1 + i % 5}")
    (directory / "corpus.csv").write_text("\n".join(rows) + "\n")
    return directory / "corpus.csv"


def status_kib(pid: int, key: str) -> int:
    """A field of /proc/PID/status in KiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def measure(model: Path, manifest: Path, out: Path) -> dict:
    """Run one extraction in a child process; its peak RssAnon and VmHWM (MiB), seconds and table size (MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(model), str(manifest), str(out)])
    peak_anon = peak_hwm = 0
    while child.poll() is None:
        peak_anon = max(peak_anon, status_kib(child.pid, "RssAnon"))
        peak_hwm = max(peak_hwm, status_kib(child.pid, "VmHWM"))
        time.sleep(0.01)
    if child.returncode != 0:
        raise SystemExit(f"extraction failed with status {child.returncode}")
    return {"seconds": round(time.perf_counter() - started, 1), "table_mib": round((out / "corpus.arrow").stat().st_size
                                                                                   / 2**20, 1),
            "peak_rss_anon_mib": round(peak_anon / 1024, 1), "peak_vm_hwm_mib": round(peak_hwm / 1024, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=150, help="utterances of the smaller corpus (default 150)")
    parser.add_argument("--seconds", type=float, default=6.0, help="mean utterance length (default 6 s)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="extract-memory-") as scratch:
        root = Path(scratch)
        model = tiny_hubert(root / "hubert")
        for n in (args.utterances, 2 * args.utterances, 4 * args.utterances):
            manifest = noise_corpus(root / f"corpus{n}", n, args.seconds)
            rows.append({"utterances": n, **measure(model, manifest, root / f"features{n}")})
            print(f"{n:>6} utterances: table {rows[-1]['table_mib']:>7.1f} MiB, peak RssAnon "
                  f"{rows[-1]['peak_rss_anon_mib']:>7.1f} MiB, peak VmHWM {rows[-1]['peak_vm_hwm_mib']:>7.1f} MiB, "
                  f"{rows[-1]['seconds']:.0f} s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"dim": DIM, "mean_seconds": args.seconds, "runs": rows}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
