"""Object storage end to end, on nodes that share no folder: an S3-compatible server on loopback (moto_server), a
2-node Ray cluster whose nodes have their own working directories and temp dirs, and an MLflow server that keeps
the artifacts it proxies in the same bucket.

The steps are those of the README's "On several nodes" recipe: the micro smoke sweep runs as a Ray job with
`--storage-path s3://...`; one trial's worker is SIGKILLed and the trial resumes from its checkpoint in the
bucket; `ray job stop` interrupts the sweep like Ctrl+C and a second job continues it with `--resume s3://...`;
every run's artifacts are in the bucket; a third process that knows only the tracking URI loads the champion.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import yaml
from mlflow import MlflowClient
from ray.job_submission import JobStatus, JobSubmissionClient

from emodistill.tracking.server import free_port, start_server
from object_store import S3Server
from ray_nodes import JOB_ENDED, JOB_STOP_ON_SIGINT, LoopbackCluster
from sweep_fixtures import REPO, make_feature_dir, micro_space, processed_reports

pytestmark = pytest.mark.slow
EXPERIMENT = "smoke"  # the space's name: the job passes the README's arguments, no --name
KILLED = "div_sml"  # the trial whose worker is killed, and which the interruption catches mid-run
KILLED_TRIAL_STEPS = 32  # it reports every 2 steps: leave it steps to lose after each checkpoint it resumes from


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def store_env(s3):
    """The store's variables in this process while the module runs: the MLflow server started here inherits them."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3.env().items():
            patch.setenv(key, value)
        yield s3.env()


@pytest.fixture(scope="module")
def cluster(store_env, tmp_path_factory):
    """Head + one worker node, 1 CPU each (two concurrent trials use both), each in its own folders."""
    nodes = LoopbackCluster(tmp_path_factory.mktemp("ray"), num_cpus=1, workers=1,
                            env={**store_env, **JOB_STOP_ON_SIGINT})
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory):
    """The folder of the MLflow server's sqlite store."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def server(s3, store_env, server_dir):
    with start_server(f"sqlite:///{server_dir / 'mlruns.db'}", port=free_port(), workers=1,
                      artifacts_destination=f"s3://{s3.bucket}/mlartifacts") as running:
        yield running


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Features (read by the driver alone) and the micro smoke space cut to Baseline and +L_DIV +L_SML (which
    trains the L_SML pool), started at once without actor reuse: one per node."""
    root = tmp_path_factory.mktemp("inputs")
    space = micro_space(root / "space.yaml", reuse_actors=False)
    data = yaml.safe_load(space.read_text())
    data["search"]["variants"] = {k: data["search"]["variants"][k] for k in ("baseline", KILLED)}
    data["search"]["variants"][KILLED]["train.steps"] = KILLED_TRIAL_STEPS
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    return make_feature_dir(root / "features"), space


def reports_in_bucket(s3: S3Server, variant: str) -> list[dict]:
    """The processed reports of the trial of `variant`, from the result.json that Tune's driver syncs to the bucket
    (a row there means the driver holds the checkpoint that came with the row before it)."""
    for key in s3.keys("sweeps"):
        if f"variant={variant}_" in key and key.endswith("/result.json"):
            with s3.filesystem().open_input_stream(f"{s3.bucket}/{key}") as stream:
                return processed_reports(stream.read().decode())
    return []


def wait_for_reports(s3: S3Server, cluster: LoopbackCluster, job: str, enough: Callable[[list[dict]], bool],
                     timeout_s: float = 300) -> list[dict]:
    """The killed variant's reports once `enough` holds for them; fails if the job ends or time runs out first."""
    client = JobSubmissionClient(cluster.dashboard)
    deadline = time.monotonic() + timeout_s
    while not enough(rows := reports_in_bucket(s3, KILLED)):
        if client.get_job_status(job) in JOB_ENDED or time.monotonic() > deadline:
            pytest.fail(f"job {job}: {len(rows)} report(s) of {KILLED} in the bucket; logs:\n"
                        f"{client.get_job_logs(job)[-3000:]}")
        time.sleep(0.5)
    return rows


@pytest.fixture(scope="module")
def sweep(s3, cluster, server, inputs):
    """Submit the sweep; SIGKILL the +L_DIV +L_SML worker once Tune holds its first checkpoint; `ray job stop`
    once the restarted trial's first checkpoint is Tune's too; then `--resume` the URI the sweep printed.
    Returns the interrupted job's (status, logs), the resuming job's (status, logs) and the killed report row."""
    features, space = inputs
    job = cluster.submit_sweep(f"--space {space} --features {features} --tracking-uri {server.url} "
                               f"--storage-path s3://{s3.bucket}/sweeps")
    killed = wait_for_reports(s3, cluster, job, lambda rows: len(rows) >= 2)[-1]
    os.kill(killed["pid"], signal.SIGKILL)
    wait_for_reports(s3, cluster, job, lambda rows: sum(row["pid"] != killed["pid"] for row in rows) >= 2)
    JobSubmissionClient(cluster.dashboard).stop_job(job)
    interrupted = cluster.wait_for_job(job)
    resume = re.search(r"emodistill sweep --resume (s3://[^\s`]+)", interrupted[1])
    assert resume, interrupted[1][-3000:]
    return interrupted, cluster.wait_for_job(cluster.submit_sweep(f"--resume {resume.group(1)}")), killed


def trial_runs(client: MlflowClient) -> dict:
    """variant -> the trial's run."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`emodistill.kind` = 'trial'")
    return {run.data.tags["variant"]: run for run in runs}


def artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of the run (recursively), as the tracking server lists it."""
    files = []
    for item in client.list_artifacts(run_id, path):
        files += artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return files


def test_interrupted_sweep_resumes_from_its_uri(s3, sweep):
    (status, logs), (resumed_status, resumed_logs), _ = sweep
    assert status == JobStatus.STOPPED, logs[-3000:]
    assert f"sweep {EXPERIMENT} interrupted; nothing was finalised" in logs
    assert resumed_status == JobStatus.SUCCEEDED, resumed_logs[-3000:]
    assert f"registered as {EXPERIMENT} version 1 (alias champion)" in resumed_logs
    assert f"reusing pool from s3://{s3.bucket}/sweeps/pool-cache/" in resumed_logs  # trained once, kept in S3


def test_killed_trial_resumes_from_its_checkpoints_in_the_bucket(s3, server, sweep):
    _, _, killed = sweep
    runs = trial_runs(MlflowClient(server.url))
    assert {run.info.status for run in runs.values()} == {"FINISHED"}
    run = runs[KILLED]
    assert run.data.tags["ray.trial_id"] == killed["trial_id"]
    client = MlflowClient(server.url)
    resumed = [m.value for m in client.get_metric_history(run.info.run_id, "resumed_from_step")]
    assert len(resumed) == 2 and 2 <= resumed[0] < resumed[1]  # after the kill, then after the interruption
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")]
    assert steps.count(1) == 1 and max(steps) == KILLED_TRIAL_STEPS  # continued, never started over
    checkpoints = [key for key in s3.keys("sweeps") if f"variant={KILLED}_" in key and key.endswith("/trial.json")]
    assert len(checkpoints) == 2  # Tune keeps the last two, in the bucket


def test_everything_the_sweep_wrote_is_in_the_bucket(s3, server, server_dir, cluster, sweep):
    keys = set(s3.keys())
    (experiment_dir,) = {key.split("/")[1] for key in keys if key.startswith(f"sweeps/{EXPERIMENT}-")}
    assert {f"sweeps/{experiment_dir}/sweep.json", f"sweeps/{experiment_dir}/sweep_result.json"} <= keys
    assert [key for key in keys if key.startswith("sweeps/pool-cache/") and key.endswith("/pool.json")]
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert {run.data.tags["emodistill.kind"] for run in runs} == {"sweep", "baseline", "trial"}
    for run in runs:
        files = artifact_files(client, run.info.run_id)
        assert files, f"run {run.info.run_name} has no artifacts"
        prefix = f"mlartifacts/{experiment.experiment_id}/{run.info.run_id}/artifacts/"
        assert {prefix + path for path in files} <= keys, run.info.run_name
    # Nothing went to a local folder: no artifacts beside the server's store, no `s3:` folder anywhere.
    assert not (server_dir / "mlartifacts").exists()
    for folder in [REPO, *(node.cwd for node in cluster.nodes)]:
        assert not (folder / "s3:").exists()


def test_third_process_loads_the_champion_with_only_the_tracking_uri(server, sweep, tmp_path):
    code = ("import emodistill, sys; from emodistill.tracking.registry import champion_run_id; "
            f"generator = emodistill.best_generator({EXPERIMENT!r}, tracking_uri=sys.argv[1], champion=True); "
            "print(champion_run_id(sys.argv[2], sys.argv[1]), generator.sample(3).num_rows)")
    # No store credentials, no Ray variables, another working directory and cache: the server proxies the bucket.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "EMODISTILL_CACHE": str(tmp_path / "cache"),
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    done = subprocess.run([sys.executable, "-c", code, server.url, EXPERIMENT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    champion, rows = done.stdout.split()
    assert rows == "12" and (tmp_path / "cache" / "generators" / champion).is_dir()
    assert MlflowClient(server.url).get_run(champion).data.tags["emodistill.kind"] == "trial"
