"""Shared fixtures: a miniature IEMOCAP tree in the real format (see iemocap_fixture.py)."""

from __future__ import annotations

import os

# Ray reads RAY_AUTH_MODE once, at import: clients of a `ray start --head` cluster (token auth is on by
# default in Ray 2.60) need it set before any test module imports Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
# Nothing in the suite may reach a model hub; huggingface_hub also reads this once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
