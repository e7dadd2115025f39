"""A real `mlflow server` on a loopback port: health, a run with a proxied artifact, and a clean stop."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import emodistill
from emodistill.errors import EmodistillError
from emodistill.tracking import runs, store, uris
from emodistill.tracking.server import free_port, is_loopback, start_server


def processes_in_group(pgid: int) -> list[int]:
    """PIDs whose process group is `pgid` (read from /proc, independent of the handle under test)."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(status.parent.name))
    return pids


@pytest.mark.slow
def test_server_proxies_artifacts_and_stops_its_whole_group(tmp_path):
    backend = f"sqlite:///{tmp_path / 'mlruns.db'}"
    with start_server(backend, port=free_port()) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            assert response.status == 200
        # `mlflow server` and one uvicorn worker: no job runner (seven huey consumers of ~270 MiB each).
        assert len(processes_in_group(server.pid)) == 2

        experiment_id = store.get_or_create_experiment("remote", server.url)
        client = store.tracking_client(server.url)
        experiment = client.get_experiment(experiment_id)
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        # The UI opens it in its model-training view, not the GenAI one.
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        parent = runs.start_parent_run("remote", "sweep", {"a.b": 1}, None, server.url)
        trial = runs.start_trial_run(client, experiment_id, parent, "t0", {"loss.tau": 0.5})
        runs.finish_run(client, trial, "FAILED", reason="worker lost")
        assert client.get_run(trial).data.tags["mlflow.parentRunId"] == parent
        stored = list((tmp_path / "mlartifacts").rglob(runs.FAILURE_ARTIFACT))
        assert len(stored) == 1 and stored[0].read_text() == "worker lost"
    assert not server.alive() and processes_in_group(server.pid) == []


@pytest.mark.slow
def test_ui_create_starts_a_new_store_and_stops_on_sigterm(tmp_path):
    path = tmp_path / "new" / "mlruns.db"
    env = {**os.environ, "PYTHONPATH": str(Path(emodistill.__file__).parents[1])}
    ui = subprocess.Popen([sys.executable, "-m", "emodistill.cli.main", "ui", "--create", "--port", str(free_port()),
                           "--tracking-uri", f"sqlite:///{path}"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = ui.stdout.readline()
        # The address opens MLflow 3's model-training view, not its GenAI one.
        assert re.match(r"MLflow UI at http://127\.0\.0\.1:\d+/#/experiments\?workflowType=machine_learning ", first)
        uris.check_existing_store(f"sqlite:///{path}")  # the server made the store
    finally:
        ui.send_signal(signal.SIGTERM)  # handled as Ctrl-C: the server is stopped
        assert ui.wait(timeout=60) == 0


def test_server_that_does_not_answer_in_time_is_stopped(tmp_path):
    port = free_port()
    with pytest.raises(EmodistillError, match=rf"no answer on http://127.0.0.1:{port}/health within 1 s; "
                                              r"log .*mlflow-server-.*\.log"):
        start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", port=port, timeout_s=1)
    assert not [pid for pid in Path("/proc").glob("[0-9]*/cmdline")
                if f"--port\0{port}\0".encode() in _read(pid)]


def _read(path: Path) -> bytes:
    """A /proc file's bytes; empty if the process is gone."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


@pytest.mark.slow
def test_auth_server_refuses_anonymous_uploads_and_serves_signed_in_clients(tmp_path, monkeypatch):
    backend = f"sqlite:///{tmp_path / 'mlruns.db'}"
    with start_server(backend, port=free_port(), workers=1, auth=True) as server:
        password = server.password_file.read_text()
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(server.password_file.parent.stat().st_mode) == 0o700
        # What replaced a champion's code before: an anonymous PUT to the proxied artifact endpoint.
        upload = urllib.request.Request(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/1/x/pyfunc_generator.py",
                                        data=b"import os", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(upload, timeout=10)
        assert refused.value.code == 401
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        parent = runs.start_parent_run("guarded", "sweep", {}, None, server.url)
        runs.finish_run(store.tracking_client(server.url), parent, "FAILED", reason="signed in")
        assert list((tmp_path / "mlartifacts").rglob(runs.FAILURE_ARTIFACT))
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(Exception, match="401|Unauthorized|credentials"):
            store.tracking_client(server.url).get_run(parent)


def test_a_server_beyond_loopback_needs_authentication(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7")
    with pytest.raises(EmodistillError, match="reachable from other machines: start it with authentication"):
        start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", host="0.0.0.0", port=free_port())
    assert not (tmp_path / "mlruns.db").exists()
