"""Hostile inputs through the `emodistill` binary, as a user meets them: for each input class (wav, manifest, YAML
config and space, feature table, generator artifact, budget, tracking URI, storage path, read-only and full file
systems) the command exits 2 with one error line naming the culprit, and leaves every file it found unchanged.

The read-only and full file systems are real tmpfs mounts (as root; skipped with the reason otherwise)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
import pytest
import soundfile as sf
from safetensors.torch import load_file, save_file

import emodistill
from emodistill.features import dataset_fingerprint
from sweep_fixtures import DIM, REPO, make_corpus_dir
from toy import save_micro_generator, toy_meta

EMODISTILL = Path(sys.executable).with_name("emodistill")
ERROR_LINE = re.compile(r"^emodistill [a-z]+: (internal )?error: ")
# What else a run may print on stderr before it stops: its own progress (log lines at INFO, progress bars).
PROGRESS_LINE = re.compile(r"^\d\d:\d\d:\d\d INFO emodistill[.\w]*: |^[^:]*: +\d+%\|")
SMOKE_SPACE = REPO / "search_spaces" / "smoke.yaml"
LABELS = ("neu", "hap", "ang", "sad")
MOUNTS = {"ro": "size=64k,ro", "full": "size=16k"}  # the corpus of a few wavs extracts to ~100 KiB


def run_emodistill(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    """The binary run on `args` in `cwd`, importing this checkout's package, caching outside the workspace."""
    env = {**os.environ, "PYTHONPATH": str(Path(emodistill.__file__).parents[1]), "EMODISTILL_CACHE": str(cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([str(EMODISTILL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path) -> the SHA-256 of its bytes; folders as 'dir', links by target."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = f"link to {os.readlink(path)}"
        else:
            out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, 16000, subtype="FLOAT")


def _manifest(folder: Path, wavs: list[str]) -> Path:
    """A manifest CSV over `wavs` (relative to `folder`): labels in turn, two speakers, two sessions."""
    rows = [f"{wav},{LABELS[i % 4]},spk{i % 2},{1 + i % 2}" for i, wav in enumerate(wavs)]
    path = folder / "manifest.csv"
    path.write_text("path,label,speaker,session\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The inputs the cases start from: wavs and their manifest corpus, a feature directory (and one with a NaN
    frame), a micro generator, a file where folders are expected; the read-only and full mounts where possible."""
    root = tmp_path_factory.mktemp("hostile")
    cache = tmp_path_factory.mktemp("hostile-cache")
    rng = np.random.default_rng(0)
    wavs = [f"audio/u{i}.wav" for i in range(8)]
    for wav in wavs:
        _wav(root / wav, 0.1 * rng.standard_normal(8000).astype(np.float32))
    _manifest(root, wavs)
    done = run_emodistill(["corpus", "manifest", "--csv", "manifest.csv", "--out", "corpus"], root, cache)
    assert done.returncode == 0, done.stderr
    make_corpus_dir(root / "features")
    make_corpus_dir(root / "nan-features", nan_utterance="s2_005")
    save_micro_generator(root / "generator", DIM, meta=toy_meta(DIM, labels=LABELS, split="train"),
                         features=dataset_fingerprint(root / "features", 1))  # as if trained on fold 1
    (root / "some_file").write_text("not a folder\n")
    mounted = []
    if os.geteuid() == 0:
        for name, options in MOUNTS.items():
            (root / name).mkdir()
            if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(root / name)],
                              capture_output=True).returncode == 0:
                mounted.append(root / name)
    yield root, cache, mounted
    for mount in mounted:
        subprocess.run(["umount", str(mount)], check=True)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def nan_wav(case: Path) -> list[str]:
    samples = np.zeros(8000, np.float32)
    samples[4000] = np.nan
    _wav(case / "bad.wav", samples)
    corpus = (case.parents[1] / "corpus" / "corpus.csv").read_text()
    _write(case / "corpus" / "corpus.csv", corpus + f"bad,{case}/bad.wav,sad,spk1,,2,0.5\n")
    return ["features", "extract", "--corpus", str(case / "corpus"), "--out", str(case / "f")]


def text_as_wav(case: Path) -> list[str]:
    _write(case / "audio" / "fake.wav", "RIFF? no\n")
    _manifest(case, ["audio/fake.wav"])
    return ["corpus", "manifest", "--csv", str(case / "manifest.csv"), "--out", str(case / "c")]


def manifest_bad_session(case: Path) -> list[str]:
    _write(case / "m.csv", "path,label,speaker,session\n../audio/u0.wav,neu,s,one\n")
    return ["corpus", "manifest", "--csv", str(case / "m.csv"), "--out", str(case / "c")]


def config_file(text: str, name: str = "config.yaml") -> Callable[[Path], list[str]]:
    def setup(case: Path) -> list[str]:
        _write(case / name, text)
        return ["distill", "--features", "features", "--config", str(case / name), "--out", str(case / "r")]
    return setup


def config_override(override: str) -> Callable[[Path], list[str]]:
    def setup(case: Path) -> list[str]:
        return ["distill", "--features", "features", "--config", "micro", "--set", override, "--out", str(case / "r")]
    return setup


def space_file(extra: str = "", replace: tuple[str, str] = ("", "")) -> Callable[[Path], list[str]]:
    def setup(case: Path) -> list[str]:
        _write(case / "space.yaml", SMOKE_SPACE.read_text().replace(*replace) + extra)
        return ["sweep", "--space", str(case / "space.yaml"), "--features", "features",
                "--storage-path", str(case / "sweeps"), "--tracking-uri", f"sqlite:///{case}/mlruns.db"]
    return setup


def generator_edit(edit: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def setup(case: Path) -> list[str]:
        shutil.copytree(case.parents[1] / "generator", case / "generator")
        edit(case / "generator")
        return ["evaluate", "--generator", str(case / "generator"), "--features", "features", "--budgets", "1",
                "--no-baselines", "--out", str(case / "ev")]
    return setup


def huge_frames(generator: Path) -> None:
    config = json.loads((generator / "config.json").read_text())
    config["model"]["frames"] = 100_000_000
    (generator / "config.json").write_text(json.dumps(config))


def config_edit(key: str, value: object) -> Callable[[Path], None]:
    """An edit of the generator's config.json: its top-level `key` set to `value`."""
    def edit(generator: Path) -> None:
        config = json.loads((generator / "config.json").read_text())
        config[key] = value
        (generator / "config.json").write_text(json.dumps(config))
    return edit


def float64_weights(generator: Path) -> None:
    weights = load_file(generator / "model.safetensors")
    name = next(n for n, t in weights.items() if t.is_floating_point())
    weights[name] = weights[name].double() * 1e300
    save_file(weights, generator / "model.safetensors")


def nan_weights(generator: Path) -> None:
    weights = load_file(generator / "model.safetensors")
    next(t for t in weights.values() if t.is_floating_point()).view(-1)[0] = float("nan")
    save_file(weights, generator / "model.safetensors")


def features_edit(edit: Callable[[Path], None], info: bool = False) -> Callable[[Path], list[str]]:
    """A copy of the features edited by `edit`, then distilled from (or, with `info`, summarised)."""
    def setup(case: Path) -> list[str]:
        shutil.copytree(case.parents[1] / "features", case / "features")
        edit(case / "features")
        if info:
            return ["features", "info", str(case / "features")]
        return ["distill", "--features", str(case / "features"), "--config", "micro", "--out", str(case / "r")]
    return setup


def index_edit(field: str, value: object) -> Callable[[Path], None]:
    """An edit of features.json's `field` (dotted: `meta.upstream`, `folds.seed`, `fingerprint`) to `value`."""
    *sections, key = field.split(".")

    def edit(features: Path) -> None:
        index = json.loads((features / "features.json").read_text())
        functools.reduce(lambda part, name: part[name], sections, index)[key] = value
        (features / "features.json").write_text(json.dumps(index))
    return edit


def corpus_bytes(old: bytes, new: bytes) -> Callable[[Path], None]:
    """An edit of corpus.arrow replacing the first `old` by `new` (of the same length: the size stays recorded)."""
    def edit(features: Path) -> None:
        data = (features / "corpus.arrow").read_bytes()
        assert old in data and len(old) == len(new)
        (features / "corpus.arrow").write_bytes(data.replace(old, new, 1))
    return edit


def frame_offsets(features: Path) -> bytes:
    """The int32 list offsets of corpus.arrow's frames, as they lie in the file."""
    table = ipc.open_file(str(features / "corpus.arrow")).read_all()
    lengths = table.column("n_frames").to_numpy()
    return np.concatenate([[0], np.cumsum(lengths)]).astype("<i4")[:4].tobytes()


def offset_out_of_bounds(features: Path) -> None:
    offsets = np.frombuffer(frame_offsets(features), "<i4").copy()
    offsets[2] = 2**30
    corpus_bytes(frame_offsets(features), offsets.tobytes())(features)


def out_in_a_symlink_loop(case: Path) -> list[str]:
    (case / "loop").symlink_to("loop")
    return ["corpus", "synth", "--preset", "tiny", "--out", str(case / "loop")]


def command(*args: str) -> Callable[[Path], list[str]]:
    def setup(case: Path) -> list[str]:
        return [arg.replace("{case}", str(case)) for arg in args]
    return setup


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
# (input class, setup(case folder) -> argv, what the error line must name); mounts: the tmpfs the case needs.
CASES = [
    ("wav-nan", nan_wav, "bad.wav: 1 of 8000 samples are NaN or infinite", ()),
    ("wav-not-audio", text_as_wav, "fake.wav: not a readable audio file", ()),
    ("manifest-device", command("corpus", "manifest", "--csv", "/dev/zero", "--out", "{case}/c"),
     "/dev/zero: not a regular file (expected a manifest CSV)", ()),
    ("manifest-bad-cell", manifest_bad_session, "m.csv:2: column 'session': 'one' is not an integer", ()),
    ("config-duplicate-key", config_file("train:\n  steps: 3\nloss: {}\ntrain:\n  steps: 100000\n"),
     "config.yaml: line 4: duplicate key 'train' (first at line 1)", ()),
    ("config-empty", config_file("# to do\n"), "config.yaml: holds no settings (empty, or comments only)", ()),
    ("config-alias-bomb", config_file(ALIAS_BOMB), "config.yaml: line 2: YAML aliases", ()),
    ("config-deep-json", config_file("[" * 200_000 + "]" * 200_000, "deep.json"),
     "deep.json: not valid JSON (nested too deeply)", ()),
    ("config-infinite", config_override("loss.lambda_sml=.inf"), "'loss.lambda_sml': Input should be a finite", ()),
    ("config-device", config_override("train.device=cuda:99"), "'train.device': device 'cuda:99'", ()),
    ("config-huge-model", config_override("model.frames=100000000"), "model.frames 100000000", ()),
    ("config-bool-as-count", config_override("train.steps=true"), "'train.steps': Input should be a valid integer", ()),
    ("config-huge-count", config_override(f"train.steps={10**23}"), "'train.steps': out of range: an integer", ()),
    ("config-negative-seed", config_override("train.seed=-1"), "'train.seed': Input should be greater than", ()),
    ("config-huge-seed", config_override(f"train.seed={2**64}"), "'train.seed': Input should be less than", ()),
    ("distill-huge-selection", command("distill", "--features", "features", "--config", "micro", "--select-ppc",
                                       "100000000", "--out", "{case}/r"),
     "(--select-ppc 100000000, model.frames 32)", ()),
    ("space-duplicate-key", space_file("trials: 3\n"), "space.yaml: line 39: duplicate key 'trials'", ()),
    ("space-huge-trials", space_file(replace=("trials: 1\n", "trials: 1000000000000\n")),
     "space.yaml: trials: Input should be less than or equal to 100000", ()),
    ("space-alias-bomb", space_file(ALIAS_BOMB.replace("a:", "xa:").replace("b:", "xb:")),
     "space.yaml: line 40: YAML aliases", ()),
    ("features-nan-frame", command("distill", "--features", "nan-features", "--config", "micro", "--out", "{case}/r"),
     "corpus.arrow: utterance 's2_005' has a NaN or infinite value in frame 2", ()),
    ("features-edited-meta", features_edit(index_edit("meta.upstream", "hubert_large_ll60k"), info=True),
     "features.json: meta upstream differ from", ()),
    ("features-edited-seed", features_edit(index_edit("folds.seed", 7)), "features.json: fingerprint", ()),
    ("features-edited-fingerprint", features_edit(index_edit("fingerprint", "0" * 16)),
     "features.json: fingerprint '0000000000000000' does not match", ()),
    ("features-negative-dev-fraction", features_edit(index_edit("folds.dev_fraction", -0.5)), "dev_fraction", ()),
    ("features-session-not-a-number", features_edit(index_edit("folds.sessions", {"1_0": 12, "2": 12})),
     "sessions ['1_0'] are not session numbers", ()),
    ("features-bad-utf8", features_edit(corpus_bytes(b"s1_000", b"s1_\xff00")),
     "corpus.arrow: not a readable Arrow IPC file", ()),
    ("features-offset-out-of-bounds", features_edit(offset_out_of_bounds),
     "corpus.arrow: not a readable Arrow IPC file", ()),
    ("generator-huge-frames", generator_edit(huge_frames), "model.safetensors: weights do not match", ()),
    ("generator-float64-weights", generator_edit(float64_weights), "is torch.float64, expected torch.float32", ()),
    ("generator-huge-std", generator_edit(config_edit("normalization", {"mean": [0.0] * DIM, "std": [3e38] * DIM})),
     "normalization.std has 16 values, expected model.dim = 16 numbers in (0, 1e+06]", ()),
    ("generator-fingerprint-edited", generator_edit(config_edit("features", "not-a-fingerprint")),
     "config.json: features: String should match pattern '^[0-9a-f]{1,64}$'", ()),
    ("generator-nan-weights", generator_edit(nan_weights), "holds NaN or infinite values", ()),
    ("generator-bad-data-protocol", generator_edit(config_edit("training", {"data": {"dev_by": "session"}})),
     "config.json: training: data.dev_by: Input should be 'utterance' or 'speaker'", ()),
    ("evaluate-huge-budget", command("evaluate", "--generator", "generator", "--features", "features", "--budgets",
                                     "100000000", "--out", "{case}/ev"), "budget 100000000 per class", ()),
    ("evaluate-empty-name", command("evaluate", "--generator", "=generator", "--features", "features", "--out",
                                    "{case}/ev"), "the name '' is empty or holds a control character", ()),
    ("evaluate-newline-name", command("evaluate", "--generator", "a\nb=generator", "--features", "features", "--out",
                                      "{case}/ev"), "the name 'a\\nb' is empty or holds a control character", ()),
    ("pool-cache-no-bucket", command("distill", "--features", "features", "--config", "micro", "--set",
                                     "loss.lambda_sml=1", "--pool-cache", "s3://", "--out", "{case}/r"),
     "s3://: names no bucket or folder", ()),
    ("evaluate-huge-repeats", command("evaluate", "--generator", "generator", "--features", "features", "--repeats",
                                      "1000000000000", "--out", "{case}/ev"),
     "repeats: Input should be less than or equal to 1000", ()),
    ("tracking-uri-scheme", command("best", "--experiment", "x", "--tracking-uri", "garbage://x"),
     "tracking URI 'garbage://x': unknown scheme 'garbage'", ()),
    ("tracking-uri-no-driver", command("best", "--experiment", "x", "--tracking-uri", "mysql://u@localhost/db"),
     "tracking URI 'mysql://u@localhost/db': cannot load its database driver (No module named 'MySQLdb')", ()),
    ("tracking-server-down", command("best", "--experiment", "x", "--tracking-uri", "http://127.0.0.1:9"),
     "tracking server http://127.0.0.1:9 does not answer", ()),  # its retries are no warning lines
    ("tracking-uri-databricks", command("best", "--experiment", "x", "--tracking-uri", "databricks"),
     "tracking store databricks: Reading Databricks credential configuration failed", ()),
    ("tracking-uri-not-a-store", command("best", "--experiment", "x", "--tracking-uri", "sqlite:///manifest.csv"),
     "manifest.csv is not an SQLite database", ()),
    ("storage-path-file", command("sweep", "--space", str(SMOKE_SPACE), "--features", "features", "--storage-path",
                                  "some_file/sweeps"), "some_file: a file stands where a folder is expected", ()),
    # What a non-UTF-8 name would hold could not be opened again (the manifest, Arrow and safetensors readers).
    ("out-not-utf8", command("distill", "--features", "features", "--config", "micro", "--out", "{case}/r\udcff"),
     "r\\xff is not valid UTF-8", ()),
    ("out-in-a-symlink-loop", out_in_a_symlink_loop, "loop: too many levels of symbolic links", ()),
    ("out-under-a-file", command("corpus", "manifest", "--csv", "manifest.csv", "--out", "some_file/c"),
     "some_file", ()),
    # Checked before the evaluation (the budget here would be refused by it), not found when it is written.
    ("evaluate-out-under-a-file", command("evaluate", "--generator", "generator", "--features", "features",
                                          "--budgets", "100000000", "--out", "some_file/ev"),
     "some_file: a file stands where a folder is expected", ()),
    ("read-only-corpus", command("corpus", "manifest", "--csv", "manifest.csv", "--out", "ro/c"),
     "ro/c: the file system is read-only", ("ro",)),
    ("read-only-features", command("features", "extract", "--corpus", "corpus", "--out", "ro/f"),
     "ro/f: the file system is read-only", ("ro",)),
    ("read-only-tracking-store", command("sweep", "--space", str(SMOKE_SPACE), "--features", "features",
                                         "--tracking-uri", "sqlite:///ro/mlruns.db", "--storage-path", "{case}/s"),
     "ro: the file system is read-only", ("ro",)),
    ("read-only-storage-path", command("sweep", "--space", str(SMOKE_SPACE), "--features", "features",
                                       "--storage-path", "ro/sweeps"), "ro: the file system is read-only", ("ro",)),
    ("disk-full-features", command("features", "extract", "--corpus", "corpus", "--out", "full/f"),
     "full/f/corpus.arrow: no space left on the device", ("full",)),
    ("disk-full-corpus", command("corpus", "synth", "--preset", "tiny", "--out", "full/c"),
     "full/c/wav/Session", ("full",)),
]


@pytest.mark.parametrize("name, setup, culprit, mounts", CASES, ids=[case[0] for case in CASES])
def test_refused_in_one_line_with_nothing_changed(workspace, name, setup, culprit, mounts):
    root, cache, mounted = workspace
    missing = [m for m in mounts if root / m not in mounted]
    if missing:
        pytest.skip(f"needs a tmpfs mounted at {missing}: only root can mount one, and this run "
                    f"{'is not root' if os.geteuid() else 'could not mount it'}")
    case = root / "cases" / name
    case.mkdir(parents=True)
    args = setup(case)
    before = snapshot(root)
    done = run_emodistill(args, root, cache)
    lines = [line for line in re.split(r"[\r\n]+", done.stderr) if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    assert all(PROGRESS_LINE.match(line) for line in lines[:-1]), done.stderr  # no warning, no traceback
    assert culprit in errors[0], errors[0]
    assert snapshot(root) == before, "the refused command changed, added or removed files"
