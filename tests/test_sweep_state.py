"""What `sweep --resume` checks before Tune unpickles a sweep directory: its owner and modes, and the digests its
sweep recorded in the parent run. Real sqlite MLflow store, no Ray (the checks come first)."""

from __future__ import annotations

import json
import os
import pickle
import stat
from dataclasses import asdict

import pytest

from emodistill.cli.main import main
from emodistill.errors import IntegrityError
from emodistill.sweep.runner import STATE_FILE, SweepState, resume_sweep
from emodistill.sweep.state import STATE_TAG, check_private, record_state, state_manifest, verify_state
from emodistill.tracking import runs, store


class Planted:
    """Unpickling this runs code: what a planted tuner.pkl would do."""

    def __reduce__(self):
        return (os.system, ("touch planted-ran",))


@pytest.fixture
def sweep_dir(tmp_path):
    """A Tune-like experiment directory with a sweep.json, and its parent run in a sqlite store."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    parent = runs.start_parent_run("resume-check", "resume-check", {}, None, uri)
    path = tmp_path / "sweeps" / "resume-check-1"
    (path / "trial_0").mkdir(parents=True)
    (path / "tuner.pkl").write_bytes(pickle.dumps({"state": 1}))
    (path / "experiment_state-2026.json").write_text("{}")
    (path / "trial_0" / "params.pkl").write_bytes(pickle.dumps({"x": 1}))
    (path / "trial_0" / "result.json").write_text("{}")
    state = SweepState(name="resume-check", tracking_uri=uri, experiment_id=store.get_or_create_experiment(
        "resume-check", uri), parent_run_id=parent, features=str(tmp_path / "nowhere"), space={},
        pool_cache_dir=str(tmp_path / "pools"))
    (path / STATE_FILE).write_text(json.dumps(asdict(state)))
    record_state(store.tracking_client(uri), parent, path)
    return path, uri, parent


def test_state_files_are_the_pickles_and_the_states_that_embed_them(sweep_dir):
    path, _, _ = sweep_dir
    assert list(state_manifest(path)) == ["experiment_state-2026.json", "sweep.json", "trial_0/params.pkl", "tuner.pkl"]


def test_untouched_state_verifies_and_a_changed_or_added_file_does_not(sweep_dir):
    path, uri, parent = sweep_dir
    client = store.tracking_client(uri)
    verify_state(client, parent, path)
    (path / "trial_0" / "searcher-state-1.pkl").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"searcher-state-1.pkl was written after the sweep last recorded"):
        verify_state(client, parent, path)
    (path / "trial_0" / "searcher-state-1.pkl").unlink()
    (path / "tuner.pkl").write_bytes(pickle.dumps(Planted()))
    with pytest.raises(IntegrityError, match=r"tuner.pkl does not match the SHA-256 its sweep recorded"):
        verify_state(client, parent, path)


def test_many_state_files_are_checked_by_one_combined_digest(sweep_dir):
    path, uri, parent = sweep_dir
    for i in range(80):  # more names than a tag can list
        (path / f"trial_{i:03d}_with_a_long_name_as_tune_writes_them").mkdir()
        (path / f"trial_{i:03d}_with_a_long_name_as_tune_writes_them" / "params.pkl").write_bytes(b"p")
    client = store.tracking_client(uri)
    record_state(client, parent, path)
    assert set(json.loads(client.get_run(parent).data.tags[STATE_TAG])) == {"combined"}
    verify_state(client, parent, path)
    (path / "trial_005_with_a_long_name_as_tune_writes_them" / "params.pkl").write_bytes(b"q")
    with pytest.raises(IntegrityError, match="state files differ from those its sweep recorded"):
        verify_state(client, parent, path)


def test_a_directory_others_can_write_is_refused(sweep_dir):
    path, _, _ = sweep_dir
    check_private(path)
    (path / "trial_0").chmod(0o777)
    with pytest.raises(IntegrityError, match=r"trial_0 can be written by its group or others \(mode drwxrwxrwx\)"):
        check_private(path)


def test_a_planted_pickle_is_never_unpickled_and_the_parent_run_fails(sweep_dir, tmp_path, monkeypatch, capsys):
    path, uri, parent = sweep_dir
    monkeypatch.chdir(tmp_path)
    (path / "tuner.pkl").write_bytes(pickle.dumps(Planted()))
    assert main(["sweep", "--resume", str(path)]) == 2
    assert "tuner.pkl does not match the SHA-256" in capsys.readouterr().err
    assert not (tmp_path / "planted-ran").exists()
    run = store.tracking_client(uri).get_run(parent)
    assert run.info.status == "FAILED" and "resume failed" in run.data.tags["emodistill.failure"]
    (path / "tuner.pkl").chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IWOTH)
    with pytest.raises(IntegrityError, match="can be written by its group or others"):
        resume_sweep(path)
