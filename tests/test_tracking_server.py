"""A real `mlflow server` on a loopback port: health, a run with a proxied artifact, and a clean stop."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

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
def test_server_that_cannot_bind_reports_its_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(EmodistillError, match=r"exited with code .*mlflow-server-.*\.log"):
            start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", port=taken.getsockname()[1], timeout_s=60)
