"""`emodistill demo`, the README's first command, run as a user runs it (the binary) on the `tiny` corpus."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from emodistill.cli.sweep import DEMO_SAMPLE_PPC
from emodistill.features.store import read_table

EMODISTILL = str(Path(sys.executable).with_name("emodistill"))


def test_demo_runs_the_whole_pipeline_on_the_tiny_corpus(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([EMODISTILL, "demo", "--preset", "tiny", "--out", str(out)], capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert (out / "corpus" / "corpus.csv").is_file() and (out / "mlruns.db").is_file()
    sample = read_table(out / "synthetic.arrow")
    counts = Counter(sample.column("label").to_pylist())
    assert counts == {label: DEMO_SAMPLE_PPC for label in ("neu", "hap", "ang", "sad")}
    assert f"everything is under {out}" in done.stdout
    assert f"emodistill ui --tracking-uri sqlite:///{out / 'mlruns.db'}" in done.stdout
    # Run again over the same folder with another preset: refused in one line, nothing of the first run changed.
    before = (out / "synthetic.arrow").read_bytes()
    again = subprocess.run([EMODISTILL, "demo", "--preset", "small", "--out", str(out)], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].endswith(
        "not of preset small; choose another --out (or the preset it was made with)")
    assert (out / "synthetic.arrow").read_bytes() == before
