"""An S3-compatible server on loopback (moto's standalone `moto_server`), in its own process group.

Clients find it the way they would find any S3-compatible store: through the environment (`env()`), which
pyarrow.fs (Ray Tune's storage), boto3 and MLflow's artifact store all read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.fs as pafs

from emodistill.tracking.server import free_port

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))


class S3Server:
    """`moto_server` on 127.0.0.1 with one bucket; `.env()` points clients at it, `.stop()` ends it."""

    def __init__(self, bucket: str = "emodistill", timeout_s: float = 30.0):
        self.bucket, self.port = bucket, free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
        with self.log.open("w") as out:
            self.process = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)], stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait(timeout_s)
            self.filesystem().create_dir(bucket)
        except BaseException:
            self.stop()
            raise

    def env(self) -> dict[str, str]:
        """What a node, a server or a client needs to reach the store (and nothing from ~/.aws)."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint, "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow client of the store (allowed to create buckets)."""
        return pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                                 endpoint_override=self.endpoint, allow_bucket_creation=True)

    def keys(self, prefix: str = "") -> list[str]:
        """Keys of the bucket's objects under `prefix`."""
        selector = pafs.FileSelector(f"{self.bucket}/{prefix}".rstrip("/"), recursive=True, allow_not_found=True)
        files = [info.path for info in self.filesystem().get_file_info(selector) if info.type == pafs.FileType.File]
        return sorted(path.split("/", 1)[1] for path in files)

    def _wait(self, timeout_s: float) -> None:
        """Block until the server answers HTTP; fail with its log if it exits or stays silent."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=2).close()
                return
            except urllib.error.HTTPError:  # an answer all the same
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise TimeoutError(f"moto_server gave no answer on {self.endpoint} in {timeout_s:.0f} s")

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 5 s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
