"""An MLflow tracking server (UI + REST + proxied artifacts) run as a child process group we own."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
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
from emodistill.tracking.uris import artifact_root_for, resolve_tracking_uri, sqlite_path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MlflowServer:
    """Handle on a running `mlflow server`: `.url`, `.pid`, `.stop()`; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path, password_file: Path | None = None):
        self.process, self.url, self.log_path = process, url, log_path
        self.password_file = password_file  # with basic auth: where the admin's password is kept

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


JOBS_OFF = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # unless the environment says otherwise
AUTH_DIR = "mlflow-auth"  # beside the store: the users database, the admin password and the session secret
ADMIN = "admin"


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _private_secret(path: Path) -> str:
    """The secret in `path` (mode 0600), created with 32 random bytes the first time."""
    if not path.exists():
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def auth_settings(directory: Path) -> tuple[dict[str, str], Path]:
    """MLflow basic-auth settings kept in `directory` (0700): the server's environment, and the admin password's file.

    The admin password is $MLFLOW_TRACKING_PASSWORD when set, else a random one kept in `directory/admin_password`;
    the Flask session secret is random. Clients sign in with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    password_file = directory / "admin_password"
    if os.environ.get("MLFLOW_TRACKING_PASSWORD") and not password_file.exists():
        with os.fdopen(os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(os.environ["MLFLOW_TRACKING_PASSWORD"])
    config = directory / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{directory.resolve() / 'users.db'}\n"
                      f"admin_username = {ADMIN}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": _private_secret(password_file),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": _private_secret(directory / "session_secret")}
    return env, password_file


def start_server(backend_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
                 artifacts_destination: str | Path | None = None, serve_artifacts: bool = True, workers: int = 1,
                 timeout_s: float = 90.0, auth: bool = False) -> MlflowServer:
    """Launch `mlflow server` on `backend_uri` in its own process group; return once GET /health answers.

    Served artifacts are kept in `artifacts_destination`: a folder (default: mlartifacts/ beside a sqlite store)
    or an object-storage URI such as s3://bucket/mlartifacts, which the server reaches with the credentials and
    endpoint of its environment (AWS_*, MLFLOW_S3_ENDPOINT_URL); clients then need only the server's URL.
    With `auth`, MLflow's basic-auth app guards every request (the UI, the REST API and artifact uploads), with
    its settings in `mlflow-auth/` beside the store (see auth_settings). A server that listens beyond loopback
    must have it: anyone who can write its artifacts could replace a registered model's code.
    """
    if not auth and not is_loopback(host):
        raise EmodistillError(f"an MLflow server on {host} is reachable from other machines: start it with "
                              "authentication (emodistill ui --auth), or on 127.0.0.1")
    backend_uri = resolve_tracking_uri(backend_uri)
    if backend_uri.startswith("sqlite:"):
        sqlite_path(backend_uri).parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--host", host, "--port", str(port), "--workers", str(workers)]
    # MLflow 3 starts a job runner by default (seven huey consumers of ~270 MiB each) that serves only its GenAI
    # features; emodistill never submits a job. One uvicorn worker runs in the server's own process (no supervisor).
    env = {**JOBS_OFF, **os.environ}
    password_file = None
    if auth:
        root = sqlite_path(backend_uri).parent if backend_uri.startswith("sqlite:") else Path.cwd()
        settings, password_file = auth_settings(root / AUTH_DIR)
        env.update(settings)
        command += ["--app-name", "basic-auth"]
    if serve_artifacts:
        artifacts = artifacts_destination or artifact_root_for(backend_uri)
        if artifacts is None:
            raise EmodistillError(f"start_server: pass artifacts_destination for the non-sqlite store {backend_uri}")
        command += ["--serve-artifacts", "--artifacts-destination", storage.resolve(artifacts)]
    else:
        command += ["--no-serve-artifacts"]
    log_file = tempfile.NamedTemporaryFile(prefix="mlflow-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, env=env)
    log_file.close()
    server = MlflowServer(process, f"http://{host}:{port}", Path(log_file.name), password_file)
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
