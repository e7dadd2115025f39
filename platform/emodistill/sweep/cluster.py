"""Joining a Ray cluster, and what a sweep needs from one with several nodes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from emodistill.errors import ConfigError
from emodistill.tracking.store import is_local_uri

log = logging.getLogger(__name__)


@contextmanager
def connected(address: str | None = None) -> Iterator[None]:
    """Join the cluster at `address` or $RAY_ADDRESS (set inside `ray job submit`), else start a local one.

    Ray already initialised in this process (a notebook, a test) is used as it is and left running;
    Ray started here is shut down on exit. "local" is explicit because a bare `ray.init()` would join
    any other cluster that happens to run on the machine.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    check_auth_mode()
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    if address == "local":
        keep_token_private()
    resources = ray.cluster_resources()
    log.info("Ray: %s, %d node(s), %g CPUs, %g GPUs", address, len(alive_nodes()), resources.get("CPU", 0),
             resources.get("GPU", 0))
    try:
        yield
    finally:
        ray.shutdown()


def check_auth_mode() -> None:
    """Refuse $RAY_AUTH_MODE unless unset or `token`: Ray turns token authentication off for every other value."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode != "token":
        raise ConfigError(f"RAY_AUTH_MODE={mode!r}: Ray runs without token authentication for any value but "
                          "'token' (its processes listen on every interface); unset RAY_AUTH_MODE or set it to token")


def keep_token_private() -> None:
    """Make the Ray token a local start may create (~/.ray/auth_token, written 0644) readable by its owner only."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if path.is_file() and path.stat().st_mode & 0o077:
        path.chmod(0o600)
        log.info("Ray token %s made private (0600)", path)


def alive_nodes() -> list[dict]:
    """The cluster's live nodes as `ray.nodes()` describes them."""
    return [node for node in ray.nodes() if node["Alive"]]


def check_tracking_uri(uri: str) -> None:
    """Refuse a store on one machine's disk when trials may run on another machine."""
    nodes = alive_nodes()
    if len(nodes) > 1 and is_local_uri(uri):
        raise ConfigError(
            f"tracking URI {uri!r} is a local store, but the Ray cluster has {len(nodes)} nodes: trials on other "
            "nodes could not write to it. Start an MLflow server that proxies artifacts (`emodistill ui --host "
            "0.0.0.0 --artifacts-destination s3://BUCKET/mlartifacts`, i.e. `mlflow server --backend-store-uri "
            "sqlite:///mlruns.db --serve-artifacts ...`) and pass its http://HOST:PORT as --tracking-uri")


def node_identity() -> dict[str, str]:
    """Where the calling worker runs: hostname and Ray node id (tags of a trial's run)."""
    return {"ray.node_id": ray.get_runtime_context().get_node_id(), "ray.hostname": socket.gethostname()}
