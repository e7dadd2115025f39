"""A real `mlflow server` on a loopback port: health, a run with a proxied artifact, and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import emodistill
from emodistill.errors import EmodistillError
from emodistill.tracking import runs, store
from emodistill.tracking.server import free_port, start_server


def processes_in_group(pgid: int) -> list[int]:
    """PIDs whose process group is `pgid` (read from /proc, independent of the handle under test)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_server_proxies_artifacts_and_stops_its_whole_group(tmp_path):
    backend = f"sqlite:///{tmp_path / 'mlruns.db'}"
    with start_server(backend, port=free_port(), workers=1) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            assert response.status == 200
        assert len(processes_in_group(server.pid)) >= 2

        experiment_id = store.get_or_create_experiment("remote", server.url)
        client = store.tracking_client(server.url)
        assert client.get_experiment(experiment_id).artifact_location.startswith("mlflow-artifacts:")
        parent = runs.start_parent_run("remote", "sweep", {"a.b": 1}, None, server.url)
        trial = runs.start_trial_run(server.url, experiment_id, parent, "t0", {"loss.tau": 0.5})
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
        assert ui.stdout.readline().startswith("MLflow UI at http://127.0.0.1:")
        store.check_existing_store(f"sqlite:///{path}")  # the server made the store
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
