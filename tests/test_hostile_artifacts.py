"""Hostile artifacts, through the `emodistill` binary as a user runs it: damaged or foreign features.json, feature
tables, generator artifacts, results.json, pool caches and trainer checkpoints each end in exit 2 and one line on
stderr naming the file and field, with nothing written before changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from emodistill.distill import load_config
from emodistill.distill.pool import INDEX_FILE, pool_key
from emodistill.downstream import build_downstream, save_downstream
from emodistill.features.store import dataset_fingerprint
from evaluate_helpers import DIM, micro_generator, write_feature_dir
from sweep_fixtures import make_corpus_dir
from toy import LABELS

EMODISTILL = str(Path(sys.executable).with_name("emodistill"))
DEEP = "[" * 200_000  # nested far past any parser's recursion limit
MICRO = ["--config", "micro", "--set", "model.frames=16", "--set", "train.steps=2", "--set", "train.device=cpu"]


def run(*args) -> subprocess.CompletedProcess:
    """The binary on `args`, its output captured (a hang fails the test instead of the suite)."""
    return subprocess.run([EMODISTILL, *map(str, args)], capture_output=True, text=True, timeout=300)


def files(*folders: Path) -> dict[str, bytes]:
    """Every file under `folders`, path -> bytes: what must not change when a command refuses its input."""
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(proc: subprocess.CompletedProcess, *culprits: str) -> None:
    """Exit 2 and a single error line, the last on stderr (after any progress log), naming every one of `culprits`."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert [line for line in lines if ": error: " in line] == lines[-1:], proc.stderr
    assert lines[-1].startswith("emodistill ") and "Traceback" not in proc.stderr, proc.stderr
    for culprit in culprits:
        assert culprit in lines[-1], lines[-1]


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    """Rewrite the JSON file at `path` as `change` returns it (a dict changed in place when it returns None)."""
    data = json.loads(path.read_text())
    result = change(data)
    path.write_text(json.dumps(data if result is None else result))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A feature directory with fixed splits and a micro generator of its dimension, never altered."""
    root = tmp_path_factory.mktemp("pristine")
    return write_feature_dir(root / "features"), micro_generator(root / "generator")


@pytest.fixture()
def features(pristine, tmp_path):
    return Path(shutil.copytree(pristine[0], tmp_path / "features"))


@pytest.fixture()
def gan(pristine, tmp_path):
    return Path(shutil.copytree(pristine[1], tmp_path / "generator"))


def _set(path: list, value) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return change


INDEX_CASES = {
    "counts null": (lambda p: edit_json(p, _set(["splits", "train", "counts"], None)), "splits.train.counts"),
    "a list": (lambda p: edit_json(p, lambda data: [data]), "Input should be an object"),
    "deep nesting": (lambda p: p.write_text(DEEP), "recursion limit"),
    "a string dim": (lambda p: edit_json(p, _set(["meta", "dim"], "12")), "meta.dim"),
    "no fingerprint": (lambda p: edit_json(p, lambda data: data.pop("fingerprint") and None), "fingerprint"),
    "an unknown meta key": (lambda p: edit_json(p, _set(["meta", "bogus"], 1)), "meta.bogus"),
    "too big": (lambda p: os.truncate(p, 65 * 2**20), "bytes, more than"),  # sparse: no disk used
}
FOLDS_CASES = {
    "a named session": (_set(["folds", "sessions", "one"], 3), "folds.sessions"),
    "no sessions": (_set(["folds", "sessions"], {}), "folds.sessions"),
    "folds a list": (_set(["folds"], [1, 2]), "folds"),
    "no folds": (lambda data: data.pop("folds") and None, "either 'splits' or 'tables' with 'folds'"),
}


@pytest.mark.parametrize("case", INDEX_CASES)
def test_a_hostile_features_json_is_one_line(features, case):
    damage, field = INDEX_CASES[case]
    damage(features / "features.json")
    before = files(features)
    assert_refused(run("features", "info", features), "features.json", field)
    assert files(features) == before


@pytest.fixture(scope="module")
def corpus_features(tmp_path_factory):
    """A feature directory of one whole-corpus table with folds."""
    return make_corpus_dir(tmp_path_factory.mktemp("folds") / "features", sessions=3, per_session=8)


@pytest.mark.parametrize("case", FOLDS_CASES)
def test_a_hostile_fold_index_is_one_line(corpus_features, tmp_path, case):
    features = Path(shutil.copytree(corpus_features, tmp_path / "features"))
    change, field = FOLDS_CASES[case]
    edit_json(features / "features.json", change)
    before = files(features)
    assert_refused(run("features", "info", features), "features.json", field)
    assert_refused(run("distill", "--features", features, *MICRO, "--out", tmp_path / "run"), "features.json", field)
    assert files(features) == before and not (tmp_path / "run").exists()


def test_a_truncated_table_is_named_by_features_info(features):
    table = features / "train.arrow"
    os.truncate(table, table.stat().st_size // 2)
    assert_refused(run("features", "info", features), "train.arrow")


def test_a_table_changed_in_place_is_found_by_verify(features):
    assert run("features", "info", features, "--verify").returncode == 0
    table = features / "train.arrow"
    data = bytearray(table.read_bytes())
    middle = len(data) // 2  # inside the frames, the bulk of the file: same size, same schema
    data[middle] ^= 0xFF
    table.write_bytes(bytes(data))
    assert run("features", "info", features).returncode == 0  # the index still matches: only the content changed
    assert_refused(run("features", "info", features, "--verify"), "train.arrow", "content fingerprint")


def _generator_config(change: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda gen: edit_json(gen / "config.json", change)


GENERATOR_CASES = {
    "a list": (_generator_config(lambda data: [data]), "config.json", "Input should be an object"),
    "deep nesting": (lambda gen: (gen / "config.json").write_text(DEEP), "config.json", "recursion limit"),
    "a string prior": (_generator_config(_set(["class_prior"], "0.25")), "config.json", "class_prior"),
    "a null label list": (_generator_config(_set(["label_names"], None)), "config.json", "label_names"),
    "an unknown feature_meta key": (_generator_config(_set(["feature_meta", "bogus"], 1)), "config.json",
                                    "feature_meta.bogus"),
    "no format": (_generator_config(lambda data: data.pop("format") and None), "config.json", "expected format"),
    "truncated weights": (lambda gen: os.truncate(gen / "model.safetensors", 100), "model.safetensors", ""),
    "garbage weights": (lambda gen: (gen / "model.safetensors").write_bytes(b"\x00" * 64), "model.safetensors", ""),
    "a header past the end": (lambda gen: (gen / "model.safetensors").write_bytes((2**40).to_bytes(8, "little")),
                              "model.safetensors", ""),
}


@pytest.mark.parametrize("case", GENERATOR_CASES)
def test_a_hostile_generator_artifact_is_one_line(features, gan, tmp_path, case):
    damage, culprit, field = GENERATOR_CASES[case]
    damage(gan)
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "results.json").write_text("an earlier evaluation")
    before = files(gan, features, out)
    proc = run("evaluate", "--generator", gan, "--features", features, "--out", out, "--no-baselines",
               "--budgets", "2", "--repeats", "1", "--downstream-steps", "2", "--device", "cpu")
    assert_refused(proc, str(gan / culprit), field)
    assert files(gan, features, out) == before


RESULTS_CASES = {
    "sources an object": (lambda data: _set(["sources"], {})(data), "sources"),
    "a string mean": (lambda data: _set(["sources", 0, "conditions", "ppc2", "mean"], "0.5")(data),
                      "sources.0.conditions.ppc2.mean"),
    "a foreign file": (lambda data: {"metrics": {}}, "not an emodistill evaluation report"),
    "a list": (lambda data: [data], "Input should be an object"),
}


@pytest.fixture(scope="module")
def results(pristine, tmp_path_factory):
    """A real results.json of the micro generator at 2 utterances per class."""
    out = tmp_path_factory.mktemp("results")
    proc = run("evaluate", "--generator", pristine[1], "--features", pristine[0], "--out", out, "--no-baselines",
               "--budgets", "2", "--repeats", "1", "--downstream-steps", "2", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return out / "results.json"


@pytest.mark.parametrize("case", RESULTS_CASES)
def test_a_hostile_results_json_is_one_line(results, tmp_path, case):
    change, field = RESULTS_CASES[case]
    path = Path(shutil.copy(results, tmp_path / "results.json"))
    assert run("report", "--results", path).returncode == 0
    edit_json(path, change)
    assert_refused(run("report", "--results", path), "results.json", field)


def _planted_pool(features: Path, cache: Path, members: list[str] | None, overrides: list[str]) -> Path:
    """A pool cache entry where `distill` with `overrides` looks for one: pool.json naming `members` (absent when
    None) and a real downstream folder `seed0_converged`."""
    config = load_config("micro", [o for o in overrides if o != "--set"])
    key = pool_key(config.pool, dataset_fingerprint(features, None, config.data))
    folder = cache / key
    save_downstream(build_downstream("linear", DIM, len(LABELS), config.pool.downstream.hidden),
                    folder / "seed0_converged")
    (folder / INDEX_FILE).write_text(json.dumps({} if members is None else {"members": members}))
    return folder


POOL_CASES = {
    "no members": (None, None, INDEX_FILE, "members"),
    "a path for a member": (["../../elsewhere"], None, INDEX_FILE, "members"),
    "a truncated member": (["seed0_converged"], lambda m: os.truncate(m / "model.safetensors", 50),
                           "seed0_converged/model.safetensors", ""),
    "a member of negative width": (["seed0_converged"], lambda m: edit_json(m / "config.json", _set(["hidden"], -1)),
                                   "seed0_converged/config.json", "hidden"),
}


@pytest.mark.parametrize("case", POOL_CASES)
def test_a_hostile_pool_cache_is_one_line(features, tmp_path, case):
    members, damage, culprit, field = POOL_CASES[case]
    overrides = [*MICRO[2:], "--set", "loss.lambda_sml=1"]
    folder = _planted_pool(features, tmp_path / "pools", members, overrides)
    if damage:
        damage(folder / "seed0_converged")
    before = files(tmp_path / "pools")
    proc = run("distill", "--features", features, "--config", "micro", *overrides, "--pool-cache", tmp_path / "pools",
               "--out", tmp_path / "run")
    assert_refused(proc, culprit, field)
    assert files(tmp_path / "pools") == before and not (tmp_path / "run" / "generator").exists()


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04" + b"\x00" * 40])
def test_a_hostile_trainer_checkpoint_is_one_line(features, tmp_path, content):
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(content)
    proc = run("distill", "--features", features, *MICRO, "--out", tmp_path / "run", "--resume")
    assert_refused(proc, str(checkpoint), "not a readable emodistill checkpoint")
    assert checkpoint.read_bytes() == content
