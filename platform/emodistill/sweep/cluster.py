"""Joining a Ray cluster, and what a sweep needs from one with several nodes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray
import torch

from emodistill.errors import ConfigError
from emodistill.tracking.uris import is_local_uri

log = logging.getLogger(__name__)


@contextmanager
def connected(address: str | None = None, trial_resources: dict[str, float] | None = None) -> Iterator[None]:
    """Join the cluster at `address` or $RAY_ADDRESS (set inside `ray job submit`), else start a local one.

    Ray already initialised in this process (a notebook, a test) is used as it is and left running;
    Ray started here is shut down on exit. "local" is explicit because a bare `ray.init()` would join
    any other cluster that happens to run on the machine. A trial asking for `trial_resources` (Tune's
    {"cpu": .., "gpu": ..}) that no node can hold is refused: before a local cluster starts, against this
    machine; else against the cluster's nodes (Tune would wait for it forever).
    """
    if ray.is_initialized():
        check_trial_fits(trial_resources, alive_nodes())
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    check_auth_mode()
    if address == "local":
        check_trial_fits(trial_resources, [machine_node()])
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address == "local":
            keep_token_private()
        else:
            check_trial_fits(trial_resources, alive_nodes())
        resources = ray.cluster_resources()
        log.info("Ray: %s, %d node(s), %g CPUs, %g GPUs", address, len(alive_nodes()), resources.get("CPU", 0),
                 resources.get("GPU", 0))
        yield
    finally:
        ray.shutdown()


def machine_node() -> dict:
    """This machine as a local Ray start would declare it (the CPUs this process may use, the GPUs torch sees)."""
    return {"NodeManagerAddress": "this machine",
            "Resources": {"CPU": len(os.sched_getaffinity(0)), "GPU": torch.cuda.device_count()}}


def check_trial_fits(trial_resources: dict[str, float] | None, nodes: list[dict]) -> None:
    """Refuse a trial's resources that no node in `nodes` (as `ray.nodes()` describes them) can hold at once."""
    if not trial_resources or not nodes:
        return
    asked = {key.upper(): float(value) for key, value in trial_resources.items() if value}
    if any(all(node["Resources"].get(key, 0) >= value for key, value in asked.items()) for node in nodes):
        return
    largest = max(nodes, key=lambda node: tuple(node["Resources"].get(key, 0) for key in asked))
    has = ", ".join(f"{largest['Resources'].get(key, 0):g} {key}" for key in asked)
    wants = ", ".join(f"{value:g} {key}" for key, value in asked.items())
    where = "this machine" if len(nodes) == 1 and nodes[0]["NodeManagerAddress"] == "this machine" else (
        f"the largest of the cluster's {len(nodes)} node(s) ({largest['NodeManagerAddress']})")
    raise ConfigError(f"resources: a trial asks for {wants}, but {where} has {has}, so it would never start; "
                      "lower resources.cpu / resources.gpu in the space, or join a larger cluster (--address)")


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
    """Where the calling worker runs: hostname, Ray node id and the GPUs Ray assigned it, if any (tags of a trial's
    run; trials asking for a fraction of a GPU share one)."""
    identity = {"ray.node_id": ray.get_runtime_context().get_node_id(), "ray.hostname": socket.gethostname()}
    gpus = ray.get_gpu_ids()
    if gpus:
        identity["ray.gpu_ids"] = ",".join(map(str, gpus))
    return identity
