"""Ray's logical GPUs, as far as a CPU can check them: a local cluster declaring one GPU runs a space asking half a
GPU per trial, and two trials hold it at once, each with the device Ray assigned it."""

from __future__ import annotations

import pytest
import ray
from mlflow import MlflowClient

from emodistill.sweep import run_sweep
from sweep_fixtures import make_feature_dir, micro_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_gpu_cluster():
    """A local Ray instance declaring 2 CPUs and 1 GPU (a logical one: the trials train on the CPU)."""
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def test_two_trials_share_one_gpu_at_once(one_gpu_cluster, tmp_path):
    space = micro_space(tmp_path / "space.yaml", resources={"cpu": 1, "gpu": 0.5}, search={
        "type": "grid", "variants": {"baseline": {"loss.lambda_div": 0.0, "loss.lambda_sml": 0.0},
                                     "div": {"loss.lambda_div": 1.0, "loss.lambda_sml": 0.0}}})
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = run_sweep(space, make_feature_dir(tmp_path / "features"), name="gpu-share", tracking_uri=uri,
                       storage_path=tmp_path / "sweeps")
    client = MlflowClient(uri)
    runs = [client.get_run(trial["run_id"]) for trial in result.trials.values()]
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    # Each saw the one GPU Ray assigned it (device 0, the only one), and their runs overlap in time.
    assert [run.data.tags["ray.gpu_ids"] for run in runs] == ["0", "0"]
    first, second = sorted(runs, key=lambda run: run.info.start_time)
    assert second.info.start_time < first.info.end_time, "the two half-GPU trials did not run at once"
