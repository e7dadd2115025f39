"""Shared fixtures: a miniature IEMOCAP tree in the real format (see iemocap_fixture.py)."""

from __future__ import annotations

import pytest
from iemocap_fixture import make_iemocap_tree


@pytest.fixture(scope="session")
def iemocap_root(tmp_path_factory):
    """A read-only miniature IEMOCAP; tests that alter a tree build their own with make_iemocap_tree."""
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"))


def pytest_configure(config):
    """One torch thread per test process: micro shapes are overhead-bound, and Ray workers share the 2 cores."""
    import torch

    torch.set_num_threads(1)
