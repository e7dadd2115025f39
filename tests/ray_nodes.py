"""Ray nodes started with `ray start --block` on loopback, each in its own process group, temp dir and working
directory (so that nothing can rely on a folder another node sees), and sweeps submitted to them as Ray jobs.

`ray stop` would end every Ray process of the machine (other people's too), so each node is stopped
through the process group of the `ray start --block` command that launched it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ray.job_submission import JobStatus, JobSubmissionClient
from ray.util.state import list_nodes
from ray.util.state.exception import RayStateApiException

from emodistill.tracking.server import free_port
from sweep_fixtures import REPO

RAY = str(Path(sys.executable).with_name("ray"))
JOB_ENDED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
STARTUP_TIMEOUT = "The current node timed out during startup"  # what `ray start` says when its node never registered
# On a head node: `ray job stop` then sends the sweep SIGINT, which it handles like Ctrl+C (saving Tune's state),
# and waits up to a minute for it to exit (the README and the jobs/ examples set the same).
JOB_STOP_ON_SIGINT = {"RAY_JOB_STOP_SIGNAL": "SIGINT", "RAY_JOB_STOP_WAIT_TIME_S": "60"}


def node_environment() -> dict[str, str]:
    """This environment as if its venv were activated: jobs' `python` must be the one emodistill is installed in."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path}  # with RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH (conftest.py)


class RayNode:
    """One `ray start --block` process group in the folder `cwd` with `env` added to this environment; `.stop()`
    ends it and everything it spawned."""

    def __init__(self, args: list[str], log: Path, cwd: Path, env: Mapping[str, str] | None = None):
        # Ray's session sockets live under its temp dir and a socket path has at most 107 bytes, so the temp
        # dir is a short one of the node's own (under $TMPDIR), not one under the test's deep tmp_path.
        self.temp_dir, self.log, self.cwd = Path(tempfile.mkdtemp(prefix="ray-")), log, cwd
        # One agent/metrics port set per node: two nodes on one machine would collide on the defaults.
        ports = {"--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
                 "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port()}
        command = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}",
                   "--disable-usage-stats", *args, *(f"{k}={v}" for k, v in ports.items())]
        cwd.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=cwd, env={**node_environment(), **(env or {})})

    def check_running(self) -> None:
        """Raise with the end of its log if `ray start` has exited (it blocks for as long as the node runs)."""
        if self.process.poll() is not None:
            raise RuntimeError(f"ray start exited with {self.process.returncode}; {self.log}:\n"
                               f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM the group (ray start --block then stops its processes), SIGKILL what remains."""
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.process.poll()
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    shutil.rmtree(self.temp_dir, ignore_errors=True)
                    return
                time.sleep(0.2)


class LoopbackCluster:
    """A head (+ optional worker nodes) on 127.0.0.1 with its own ports; each node has its own temp dir and working
    directory under `root` (`head/`, `worker0/`, ...) and `env` added to this environment."""

    def __init__(self, root: Path, num_cpus: int = 2, workers: int = 0, env: Mapping[str, str] | None = None):
        try:
            self._start(root, num_cpus, workers, env)
        except RuntimeError as failed:
            # Ray waits a fixed 30 s for a starting node to register with its GCS; on a busy 2-core machine that
            # has run out once, in CI. That one failure, and only once, gets a second start on fresh ports.
            if STARTUP_TIMEOUT not in str(failed):
                raise
            self._start(root / "retry", num_cpus, workers, env)

    def _start(self, root: Path, num_cpus: int, workers: int, env: Mapping[str, str] | None) -> None:
        """Start the head and the workers and wait for all of them; stop whatever started if one fails."""
        root.mkdir(parents=True, exist_ok=True)
        self.port, self.dashboard_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.nodes = [RayNode(["--head", f"--port={self.port}", f"--num-cpus={num_cpus}",
                               "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                               f"--ray-client-server-port={free_port()}"], root / "head.log", root / "head", env)]
        try:
            self._wait_for_nodes(1)
            for i in range(workers):
                self.nodes.append(RayNode([f"--address={self.address}", f"--num-cpus={num_cpus}"],
                                          root / f"worker{i}.log", root / f"worker{i}", env))
            self._wait_for_nodes(1 + workers)
        except BaseException:
            self.stop()
            raise

    def submit_sweep(self, arguments: str) -> str:
        """`ray job submit --working-dir <repo> -- python jobs/sweep.py ARGUMENTS`, without waiting; the job id."""
        return JobSubmissionClient(self.dashboard).submit_job(entrypoint=f"python jobs/sweep.py {arguments}",
                                                              runtime_env={"working_dir": str(REPO)})

    def wait_for_job(self, job: str, timeout_s: float = 480) -> tuple[JobStatus, str]:
        """The job's final status and logs; a job still running after `timeout_s` is stopped and raises."""
        client = JobSubmissionClient(self.dashboard)
        deadline = time.monotonic() + timeout_s
        while (status := client.get_job_status(job)) not in JOB_ENDED:
            if time.monotonic() > deadline:
                client.stop_job(job)
                raise TimeoutError(f"job {job} still {status} after {timeout_s} s:\n{client.get_job_logs(job)[-3000:]}")
            time.sleep(2)
        return status, client.get_job_logs(job)

    def node_ids(self) -> set[str]:
        """Ids of the nodes the GCS reports alive (through the dashboard's state API)."""
        return {node.node_id for node in list_nodes(address=self.dashboard) if node.state == "ALIVE"}

    def _wait_for_nodes(self, count: int, timeout_s: float = 180.0) -> None:
        """Block until the dashboard answers and `count` nodes are alive; fail at once if a node's process ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in self.nodes:
                node.check_running()
            try:
                if len(self.node_ids()) >= count:
                    return
            except (ConnectionError, RayStateApiException):  # the dashboard is not up yet
                pass
            time.sleep(1.0)
        raise TimeoutError(f"Ray cluster at {self.address} did not reach {count} node(s) in {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop the workers, then the head."""
        for node in reversed(self.nodes):
            node.stop()
