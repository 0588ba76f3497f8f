"""The interim `entitlement-sidecar demo`: one verified RegisterUsage round trip."""

from __future__ import annotations

import pytest

from entitlement_sidecar import demo


def test_demo_verifies_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo exits 0 after verifying the PS256 token and its claims."""
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "PS256 signature verified" in out
    assert "claims match" in out
