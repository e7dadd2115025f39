"""What a sweep asks of the Ray it starts: token authentication on, the token private."""

from __future__ import annotations

import stat

import pytest
import ray

from emodistill.errors import ConfigError
from emodistill.sweep.cluster import connected, keep_token_private


@pytest.mark.parametrize("mode", ["disabled", "off", "false", "Token", ""])
def test_any_auth_mode_but_token_is_refused_before_ray_starts(monkeypatch, mode):
    # Ray turns authentication off for every value but "token", not only for "disabled".
    monkeypatch.setenv("RAY_AUTH_MODE", mode)
    with pytest.raises(ConfigError, match=f"RAY_AUTH_MODE='{mode}': Ray runs without token authentication"):
        with connected("local"):
            pass
    assert not ray.is_initialized()


def test_the_token_ray_wrote_world_readable_becomes_private(tmp_path, monkeypatch):
    token = tmp_path / "auth_token"
    token.write_text("0" * 64)
    token.chmod(0o644)  # how Ray writes ~/.ray/auth_token
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    keep_token_private()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
