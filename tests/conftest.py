"""Shared fixtures: a miniature IEMOCAP tree in the real format (see iemocap_fixture.py)."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path


def write_token(path: Path) -> Path:
    """A new Ray auth token (Ray's own format: 256 random bits as hex) in a file only this user can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    return path


# Every Ray cluster the suite starts and every client it runs use token authentication with one token made
# here, in the session's own temp dir, never ~/.ray/auth_token: on a fresh machine that file does not exist
# (a local ray.init() would create it, world-readable, as a side effect), and on a used one it must not
# decide whether the suite passes. Ray reads both variables once, at import, so they are set before any
# test module imports Ray; nodes and jobs inherit them through the environment.
_TOKEN_DIR = Path(tempfile.mkdtemp(prefix="emodistill-ray-token-"))
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN_PATH"] = str(write_token(_TOKEN_DIR / "auth_token"))
os.environ.pop("RAY_AUTH_TOKEN", None)  # would take precedence over the file
atexit.register(shutil.rmtree, _TOKEN_DIR, ignore_errors=True)
# Nothing in the suite may reach a model hub; huggingface_hub also reads this once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite passes whatever the caller's umask: under 002 the folders it makes would be group-writable, which
# `sweep --resume` rightly refuses. Subprocesses (the binary, Ray's nodes) inherit it.
os.umask(0o022)
# Nor does it read or fill the caller's cache (emodistill's pool cache, matplotlib's, Hugging Face's): every
# cache lives in a folder of this session, removed at its end.
_CACHE_DIR = Path(tempfile.mkdtemp(prefix="emodistill-test-cache-"))
os.environ["EMODISTILL_CACHE"] = str(_CACHE_DIR / "emodistill")
os.environ["XDG_CACHE_HOME"] = str(_CACHE_DIR)
os.environ["MPLCONFIGDIR"] = str(_CACHE_DIR / "matplotlib")
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)

import pytest  # noqa: E402

from iemocap_fixture import make_iemocap_tree  # noqa: E402


@pytest.fixture(scope="session")
def iemocap_root(tmp_path_factory):
    """A read-only miniature IEMOCAP; tests that alter a tree build their own with make_iemocap_tree."""
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"))


def pytest_configure(config):
    """One torch thread per test process: micro shapes are overhead-bound, and Ray workers share the 2 cores."""
    import torch

    torch.set_num_threads(1)
