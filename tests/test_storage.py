"""Storage locations: local folders and object-storage URIs through pyarrow.fs (a real S3-compatible server)."""

from __future__ import annotations

import os

import pyarrow.fs as pafs
import pytest

from emodistill import storage
from emodistill.errors import ConfigError
from object_store import S3Server
from silent_server import SilentServer


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


def test_uris_are_joined_inside_their_path_and_local_paths_made_absolute(tmp_path, monkeypatch):
    assert storage.join("s3://bucket", "sweeps", "sweep.json") == "s3://bucket/sweeps/sweep.json"
    assert storage.join("s3://bucket/a?endpoint_override=localhost:9000", "b") == (
        "s3://bucket/a/b?endpoint_override=localhost:9000")
    assert storage.join("gs://bucket/sweeps/", "x") == "gs://bucket/sweeps/x"
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("sweeps") == str(tmp_path / "sweeps")
    assert storage.resolve("s3://bucket/sweeps") == "s3://bucket/sweeps"
    assert storage.join(storage.resolve("sweeps"), "a") == str(tmp_path / "sweeps" / "a")
    assert not storage.is_uri(tmp_path) and not storage.is_uri("sweeps") and storage.is_uri("gs://b/x")
    # file:// is a local folder (made when missing, written atomically), not an object store
    assert storage.resolve(f"file://{tmp_path}/a%20b/c") == str(tmp_path / "a b" / "c")
    assert storage.resolve(f"file://localhost{tmp_path}") == str(tmp_path)
    with pytest.raises(ConfigError, match="file://host/x: a file:// URI names a folder on this machine"):
        storage.resolve("file://host/x")
    for tail in ("?x=1", "#part", "?", "#"):  # dropped, they would name another folder than the one written
        with pytest.raises(ConfigError, match=r"a file:// URI takes no query or fragment"):
            storage.resolve(f"file://{tmp_path}/runs{tail}")
    assert storage.resolve(f"file://{tmp_path}/a%3Fb") == str(tmp_path / "a?b")


def test_uris_resolve_to_the_filesystems_ray_uses():
    fs, path = storage.filesystem("gs://bucket/sweeps/run")
    assert isinstance(fs, pafs.GcsFileSystem) and path == "bucket/sweeps/run"
    with pytest.raises(ConfigError, match="nosuch://bucket/x: not a location pyarrow.fs can open"):
        storage.filesystem("nosuch://bucket/x")
    with pytest.raises(ConfigError, match=r"^hdfs://nn:8020/x: cannot reach it \([^\n]*\); endpoints") as refused:
        storage.filesystem("hdfs://nn:8020/x")  # pyarrow's error lists every place it looked for a JVM
    assert "\n" not in str(refused.value)


def test_local_folders_read_write_and_stage_in_place(tmp_path):
    target = str(tmp_path / "state" / "sweep.json")
    assert not storage.exists(target)
    storage.write_text(target, "{}")
    assert storage.exists(target) and storage.read_json(target, dict, missing="?") == {}
    with storage.staged_folder(str(tmp_path / "pool")) as local:
        (local / "member.txt").write_text("weights")
    with storage.local_copy(str(tmp_path / "pool")) as local:
        assert local == tmp_path / "pool" and (local / "member.txt").read_text() == "weights"
    with pytest.raises(ConfigError, match=r"missing\.json: no such state"):
        storage.read_json(str(tmp_path / "missing.json"), dict, missing="no such state")


@pytest.mark.slow
def test_object_storage_round_trip_leaves_no_local_folder(s3_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = f"s3://{s3_env.bucket}/unit"
    fs, path = storage.filesystem(root)
    assert isinstance(fs, pafs.S3FileSystem) and path == f"{s3_env.bucket}/unit"
    state = storage.join(root, "run", "sweep.json")
    assert not storage.exists(state)
    storage.write_text(state, '{"a": 1}')
    assert storage.read_json(state, dict, missing="?") == {"a": 1}
    with storage.staged_folder(storage.join(root, "pool")) as local:
        (local / "m0").mkdir()
        (local / "m0" / "w.bin").write_bytes(b"\0\1")
    assert s3_env.keys("unit") == ["unit/pool/m0/w.bin", "unit/run/sweep.json"]
    with storage.local_copy(storage.join(root, "pool")) as local:
        assert (local / "m0" / "w.bin").read_bytes() == b"\0\1"
    assert not local.exists()
    with pytest.raises(ConfigError, match=f"{root}/nothing.json: expected a file"):
        storage.read_json(storage.join(root, "nothing.json"), dict, missing="expected a file")
    assert os.listdir(tmp_path) == []  # nothing named `s3:` appeared in the working directory


def test_an_object_store_that_never_answers_is_one_error_naming_it(tmp_path, monkeypatch):
    # Accepted, then silence: without bounded timeouts and retries the S3 client waits minutes, then a traceback.
    with SilentServer() as silent:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": silent.url,
                           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                           "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
            monkeypatch.setenv(key, value)
        root = "s3://bucket/sweeps"
        tune_storage = storage.for_tune(root)  # what Ray Tune gets: the same bounded client
        assert tune_storage["storage_path"] == "bucket/sweeps"
        for fs in (storage.filesystem(root)[0], tune_storage["storage_filesystem"]):
            assert fs.__reduce__()[1][0]["connect_timeout"] == storage.CONNECT_TIMEOUT_S
        with pytest.raises(ConfigError, match=f"^{root}: cannot reach it .*AWS_ENDPOINT_URL"):
            storage.check_reachable(root)
        assert silent.accepted  # it was reached, and did not answer
