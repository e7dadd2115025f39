"""What a sweep checks before Ray starts: a tracking server or object store that never answers, and trial resources
that no node can hold, are one line and exit 2 within seconds, with nothing written and no Ray started."""

from __future__ import annotations

import os

import pytest
import ray

from emodistill.cli.main import main
from emodistill.sweep.cluster import check_trial_fits
from emodistill.errors import ConfigError
from silent_server import SilentServer
from sweep_fixtures import make_feature_dir, micro_space


@pytest.fixture
def silent():
    with SilentServer() as server:
        yield server


def sweep(tmp_path, *extra: str, **space_changes) -> int:
    features = make_feature_dir(tmp_path / "features")
    space = micro_space(tmp_path / "space.yaml", **space_changes)
    return main(["sweep", "--space", str(space), "--features", str(features), *extra])


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_tracking_server_that_never_answers_fails_the_sweep_before_ray_starts(tmp_path, capsys, silent):
    assert sweep(tmp_path, "--tracking-uri", silent.url, "--storage-path", str(tmp_path / "sweeps")) == 2
    err = one_line(capsys)
    assert f"tracking server {silent.url} does not answer" in err and silent.accepted
    assert not ray.is_initialized() and not (tmp_path / "sweeps").exists()


def test_an_object_store_that_never_answers_fails_the_sweep_before_ray_starts(tmp_path, capsys, silent,
                                                                              monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": silent.url,
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(key, value)
    store = tmp_path / "mlruns.db"
    assert sweep(tmp_path, "--tracking-uri", f"sqlite:///{store}", "--storage-path", "s3://bucket/sweeps") == 2
    assert "s3://bucket/sweeps: cannot reach it" in one_line(capsys)
    assert not ray.is_initialized() and not store.exists()


def test_a_trial_larger_than_the_machine_is_refused_before_ray_starts(tmp_path, capsys):
    store = tmp_path / "mlruns.db"
    assert sweep(tmp_path, "--tracking-uri", f"sqlite:///{store}", "--storage-path", str(tmp_path / "sweeps"),
                 resources={"cpu": 1000}) == 2
    err = one_line(capsys)
    assert f"resources: a trial asks for 1000 CPU, but this machine has {len(os.sched_getaffinity(0))} CPU" in err
    assert not ray.is_initialized() and not store.exists() and not (tmp_path / "sweeps").exists()


def test_a_trial_must_fit_one_node_of_a_cluster():
    nodes = [{"NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 4.0, "GPU": 1.0}},
             {"NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 8.0}}]
    check_trial_fits({"cpu": 4, "gpu": 0.5}, nodes)
    check_trial_fits({"cpu": 8, "gpu": 0}, nodes)
    # 8 CPUs and a GPU exist, but on no one node.
    with pytest.raises(ConfigError, match=r"asks for 8 CPU, 1 GPU, but the largest of the cluster's 2 node\(s\) "
                                          r"\(10.0.0.2\) has 8 CPU, 0 GPU"):
        check_trial_fits({"cpu": 8, "gpu": 1}, nodes)
