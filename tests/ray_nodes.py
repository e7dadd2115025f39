"""Ray nodes started with `ray start --block` on loopback, each in its own process group and temp dir.

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
from pathlib import Path

from ray.util.state import list_nodes
from ray.util.state.exception import RayStateApiException

from emodistill.tracking.server import free_port

RAY = str(Path(sys.executable).with_name("ray"))


def node_environment() -> dict[str, str]:
    """This environment as if its venv were activated: jobs' `python` must be the one emodistill is installed in."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path}  # with RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH (conftest.py)


class RayNode:
    """One `ray start --block` process group; `.stop()` ends it and everything it spawned."""

    def __init__(self, args: list[str], log: Path):
        # Ray's session sockets live under its temp dir and a socket path has at most 107 bytes, so the temp
        # dir is a short one of the node's own (under $TMPDIR), not one under the test's deep tmp_path.
        self.temp_dir, self.log = Path(tempfile.mkdtemp(prefix="ray-")), log
        # One agent/metrics port set per node: two nodes on one machine would collide on the defaults.
        ports = {"--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
                 "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port()}
        command = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}",
                   "--disable-usage-stats", *args, *(f"{k}={v}" for k, v in ports.items())]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=node_environment())

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
    """A head (+ optional worker nodes) on 127.0.0.1 with its own ports and temp dirs."""

    def __init__(self, root: Path, num_cpus: int = 2, workers: int = 0):
        self.port, self.dashboard_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.nodes = [RayNode(["--head", f"--port={self.port}", f"--num-cpus={num_cpus}",
                               "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                               f"--ray-client-server-port={free_port()}"], root / "head.log")]
        try:
            self._wait_for_nodes(1)
            for i in range(workers):
                self.nodes.append(RayNode([f"--address={self.address}", f"--num-cpus={num_cpus}"],
                                          root / f"worker{i}.log"))
            self._wait_for_nodes(1 + workers)
        except BaseException:
            self.stop()
            raise

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
