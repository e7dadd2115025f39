"""The README's Ray Jobs walk-through, run by bash as written, as a new user would on a fresh machine: an empty
HOME (no ~/.ray/auth_token), no Ray variables from this session, loopback, its own ports and files.

Only what must differ on a test machine is replaced, and each replaced text must still be in the README:
the ports, the feature folder (a toy one), the search space (the micro smoke space) and the output paths.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest
import yaml

from emodistill.tracking.server import free_port
from sweep_fixtures import REPO, make_feature_dir, micro_space

pytestmark = pytest.mark.slow
MARKER = "<!-- jobs-walkthrough"


def walkthrough() -> str:
    """The bash block that follows the README's jobs-walkthrough marker."""
    readme = (REPO / "README.md").read_text()
    match = re.search(re.escape(MARKER) + r"[^\n]*\n```bash\n(.*?)```", readme, re.S)
    assert match, f"README.md has no ```bash block after {MARKER!r}"
    return match.group(1)


def substitute(script: str, replacements: dict[str, str]) -> str:
    """`script` with each key replaced; a key the README no longer holds fails the test (it would test nothing)."""
    for old, new in replacements.items():
        assert old in script, f"the README's walk-through no longer contains {old!r}"
        script = script.replace(old, new)
    return script


def head_processes(port: int) -> list[str]:
    """Command lines of this machine's processes that belong to the Ray head on `port`."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"127.0.0.1:{port}" in line or f"port={port}" in line]


def test_readme_jobs_walkthrough_runs_as_written_on_a_fresh_machine(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    space = micro_space(tmp_path / "space.yaml")
    data = yaml.safe_load(space.read_text())
    data["search"]["variants"] = {k: data["search"]["variants"][k] for k in ("baseline", "div_sml")}
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    features = make_feature_dir(tmp_path / "features")
    port, dashboard = free_port(), free_port()
    script = substitute(walkthrough(), {
        "--port=6379": f"--port={port}", "http://127.0.0.1:8265": f"http://127.0.0.1:{dashboard}",
        "--dashboard-port=8265": f"--dashboard-port={dashboard}", "search_spaces/smoke.yaml": str(space),
        "$PWD/work/synth-fbank": str(features), "$PWD/mlruns.db": str(tmp_path / "mlruns.db"),
        "$PWD/sweeps": str(tmp_path / "sweeps"), "ray-head.log": str(tmp_path / "ray-head.log")})
    # A fresh user's environment: nothing of this session's Ray token or mode, an empty home.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "VIRTUAL_ENV"}
    # A short temp dir of its own: Ray's session sockets live under it, and a socket path has at most 107 bytes.
    env.update(HOME=str(home), TMPDIR=tempfile.mkdtemp(prefix="rj-"))
    try:
        done = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=480)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the walk-through did not finish in 480 s:\n{str(exc.stdout)[-3000:]}")
    finally:
        log = tmp_path / "ray-head.log"
        head_log = log.read_text()[-2000:] if log.exists() else "(no head log)"
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{output[-4000:]}\nhead log:\n{head_log}"
    assert "registered as smoke version 1 (alias champion)" in output, output[-4000:]
    assert (tmp_path / "mlruns.db").is_file()

    token = home / ".ray" / "auth_token"
    assert token.is_file() and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert "Token authentication is disabled" not in head_log
    # `kill $RAY_HEAD` stopped that head and everything it started.
    deadline = time.monotonic() + 30
    while head_processes(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not head_processes(port)
    shutil.rmtree(env["TMPDIR"], ignore_errors=True)
