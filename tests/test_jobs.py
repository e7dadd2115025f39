"""The sweep as a Ray job on a real 2-node cluster (two `ray start` processes on loopback, token auth on),
tracked by a real MLflow server with proxied artifacts; and the refusal of a local store on that cluster."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from mlflow import MlflowClient
from ray.job_submission import JobStatus

from emodistill import best_generator
from emodistill.tracking.server import free_port, start_server
from ray_nodes import RAY, LoopbackCluster, node_environment
from sweep_fixtures import make_feature_dir, micro_space

pytestmark = pytest.mark.slow
EXPERIMENT = "jobs-smoke"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head + one worker node, 1 CPU each, so two concurrent trials must use both nodes."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:
        pytest.fail("Ray was imported before RAY_AUTH_MODE=token was set (tests/conftest.py sets it)")
    nodes = LoopbackCluster(tmp_path_factory.mktemp("ray"), num_cpus=1, workers=1)
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlruns.db'}", port=free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Features and the micro smoke space cut to two trials, started at once without actor reuse: one per node."""
    root = tmp_path_factory.mktemp("inputs")
    space = micro_space(root / "space.yaml", reuse_actors=False)
    data = yaml.safe_load(space.read_text())
    data["search"]["variants"] = {k: data["search"]["variants"][k] for k in ("baseline", "div_sml")}
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    return make_feature_dir(root / "features"), space, root


def submit(cluster: LoopbackCluster, arguments: str) -> tuple[JobStatus, str]:
    """`ray job submit --working-dir <repo> -- python jobs/sweep.py ARGUMENTS`; wait for it; (status, logs)."""
    return cluster.wait_for_job(cluster.submit_sweep(arguments))


@pytest.fixture(scope="module")
def job(cluster, server, inputs):
    features, space, root = inputs
    return submit(cluster, f"--space {space} --features {features} --name {EXPERIMENT} "
                           f"--tracking-uri {server.url} --storage-path {root / 'sweeps'}")


def test_job_sweeps_on_both_nodes_into_the_mlflow_server(cluster, server, job):
    status, logs = job
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "registered as jobs-smoke version 1 (alias champion)" in logs
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    trials = client.search_runs([experiment.experiment_id], "tags.`emodistill.kind` = 'trial'")
    assert len(trials) == 2 and {run.info.status for run in trials} == {"FINISHED"}
    assert {run.data.tags["ray.node_id"] for run in trials} == cluster.node_ids()
    for run in trials:
        # Artifacts written on either node reached the server's store.
        assert {a.path for a in client.list_artifacts(run.info.run_id, "generator")} == {
            "generator/config.json", "generator/model.safetensors"}
    champion = client.get_model_version_by_alias(EXPERIMENT, "champion")
    assert champion.run_id in {run.info.run_id for run in trials}
    assert best_generator(EXPERIMENT, tracking_uri=server.url).sample(3).num_rows == 12


def test_local_store_is_refused_on_a_multi_node_cluster(cluster, inputs, tmp_path):
    features, space, _ = inputs
    uri = f"sqlite:///{tmp_path / 'local.db'}"
    status, logs = submit(cluster, f"--space {space} --features {features} --tracking-uri {uri} "
                                   f"--storage-path {tmp_path / 'sweeps'}")
    assert status == JobStatus.FAILED
    assert f"tracking URI '{uri}' is a local store, but the Ray cluster has 2 nodes" in logs
    assert "--serve-artifacts" in logs
    assert not (tmp_path / "local.db").exists()


def test_cluster_refuses_a_client_without_its_token(cluster, tmp_path):
    """Token auth is on for every cluster the suite starts: a client holding another token is turned away."""
    wrong = tmp_path / "other_token"
    wrong.write_text("0" * 64)
    env = {**node_environment(), "RAY_AUTH_TOKEN_PATH": str(wrong), "HOME": str(tmp_path)}
    done = subprocess.run([RAY, "job", "list", "--address", cluster.dashboard], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "Invalid authentication token" in done.stderr, done.stderr[-2000:]
