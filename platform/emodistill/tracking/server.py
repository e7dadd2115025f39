"""An MLflow tracking server (UI + REST + proxied artifacts) run as a child process group we own."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from emodistill import storage
from emodistill.errors import EmodistillError
from emodistill.tracking.store import artifact_root_for, resolve_tracking_uri, sqlite_path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MlflowServer:
    """Handle on a running `mlflow server`: `.url`, `.pid`, `.stop()`; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path):
        self.process, self.url, self.log_path = process, url, log_path

    @property
    def pid(self) -> int:
        """PID of the server's main process (also its process group id)."""
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        """True while any process of the server's group exists."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after `grace_s`."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            os.killpg(self.pid, sig)
            self._reap(wait_s)
        if self.alive():
            raise EmodistillError(f"mlflow server (process group {self.pid}) survived SIGKILL")
        log.info("mlflow server at %s stopped", self.url)

    def _reap(self, timeout_s: float) -> None:
        """Wait until the group is gone or `timeout_s` passes, collecting our own child's exit status."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.process.poll()
            if not self.alive():
                return
            time.sleep(0.1)

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(backend_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
                 artifacts_destination: str | Path | None = None, serve_artifacts: bool = True, workers: int = 2,
                 timeout_s: float = 90.0) -> MlflowServer:
    """Launch `mlflow server` on `backend_uri` in its own process group; return once GET /health answers.

    Served artifacts are kept in `artifacts_destination`: a folder (default: mlartifacts/ beside a sqlite store)
    or an object-storage URI such as s3://bucket/mlartifacts, which the server reaches with the credentials and
    endpoint of its environment (AWS_*, MLFLOW_S3_ENDPOINT_URL); clients then need only the server's URL.
    """
    backend_uri = resolve_tracking_uri(backend_uri)
    if backend_uri.startswith("sqlite:"):
        sqlite_path(backend_uri).parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--host", host, "--port", str(port), "--workers", str(workers)]
    if serve_artifacts:
        artifacts = artifacts_destination or artifact_root_for(backend_uri)
        if artifacts is None:
            raise EmodistillError(f"start_server: pass artifacts_destination for the non-sqlite store {backend_uri}")
        command += ["--serve-artifacts", "--artifacts-destination", storage.resolve(artifacts)]
    else:
        command += ["--no-serve-artifacts"]
    log_file = tempfile.NamedTemporaryFile(prefix="mlflow-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    log_file.close()
    server = MlflowServer(process, f"http://{host}:{port}", Path(log_file.name))
    try:
        _wait_healthy(server, timeout_s)
    except BaseException:
        server.stop()
        raise
    log.info("mlflow server at %s (pid %d, store %s, log %s)", server.url, server.pid, backend_uri, server.log_path)
    return server


def _wait_healthy(server: MlflowServer, timeout_s: float) -> None:
    """Poll GET /health until it answers 200; raise with the log tail if the server exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EmodistillError(f"mlflow server exited with code {server.process.returncode} before answering "
                                  f"{server.url}/health; log {server.log_path}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise EmodistillError(f"mlflow server gave no answer on {server.url}/health within {timeout_s:.0f} s; "
                          f"log {server.log_path}:\n{server.log_tail()}")
