"""Containers Anywhere credentials: the buyer's license token in, refreshed role keys out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.aws import anywhere
from entitlement_sidecar.aws import license_manager as lm
from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.errors import ConfigurationError, PermanentError
from entitlement_sidecar.testing import clean_env

ROLE = "arn:aws:iam::210987654321:role/buyer-license-consumer"
TOKEN = "eyJhbGciOi-buyer-license-token"
SCENARIO: dict[str, Any] = {
    "licenses": [
        {
            "sku": "prod-anywhere",
            "account": "210987654321",
            "entitlements": [{"name": "seats", "unit": "Count", "max_count": 5}],
            "tokens": {TOKEN: ROLE},
        }
    ],
    # SigV4 is verified: only the keys STS issued (and this scenario's caller) may call.
    "callers": {"AKIDNOBODY": {"secret": "unused"}},
}


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose endpoints, and nothing else, the process environment points at."""
    with Emulator(SCENARIO) as emu:
        env = clean_env()
        for name in [n for n in __import__("os").environ if n not in env]:
            monkeypatch.delenv(name)
        endpoints = {k: v for k, v in emu.env().items() if k.startswith("AWS_ENDPOINT_URL")}
        for name, value in {**endpoints, "AWS_EC2_METADATA_DISABLED": "true"}.items():
            monkeypatch.setenv(name, value)
        yield emu


def secret_dir(tmp_path: Path, token: str = TOKEN, role: str = ROLE) -> str:
    """The buyer's Secret as Kubernetes mounts it: one file per key."""
    (tmp_path / "license_token").write_text(token + "\n")
    (tmp_path / "iam_role").write_text(role)
    return str(tmp_path)


def client(directory: str, duration: int = 3600) -> tuple[Any, anywhere.LicenseTokenProvider]:
    secret = anywhere.SecretFiles(directory, "ENTITLEMENT_LICENSE_ANYWHERE_DIR")
    provider = anywhere.LicenseTokenProvider(
        secret, "us-east-1", anywhere.session_name("pod-1"), duration_seconds=duration
    )
    return lm.make_client("us-east-1", session=anywhere.session(provider)), provider


def checkout(lm_client: Any, token: str) -> lm.Checkout:
    return lm.checkout(
        lm_client,
        sku="prod-anywhere",
        checkout_type=lm.PROVISIONAL,
        entitlements=[lm.Entitlement("seats", "Count", "1")],
        client_token=token,
    )


def test_the_license_token_buys_keys_of_the_buyers_account(emu: Emulator, tmp_path: Path) -> None:
    """GetAccessToken then AssumeRoleWithWebIdentity; the signed call checks out the license."""
    lm_client, provider = client(secret_dir(tmp_path))
    assert checkout(lm_client, "a" * 64).license_arn
    requests = emu.records()["requests"]
    assert (requests["GetAccessToken"], requests["AssumeRoleWithWebIdentity"]) == (1, 1)
    [held] = [c for lic in emu.licenses() for c in lic["consumptions"]]
    assert held["caller"].startswith("ASIA")
    assert held["account"] == "210987654321"
    assert provider.refreshes == 1


def test_keys_are_refreshed_before_they_expire(emu: Emulator, tmp_path: Path) -> None:
    """Keys valid 15 minutes are inside botocore's refresh window: the next call gets new ones."""
    lm_client, provider = client(secret_dir(tmp_path), duration=900)
    checkout(lm_client, "b" * 64)
    checkout(lm_client, "c" * 64)
    assert provider.refreshes >= 2
    callers = {c["caller"] for lic in emu.licenses() for c in lic["consumptions"]}
    assert len(callers) == 2  # each call signed with freshly issued keys
    assert emu.records()["requests"]["AssumeRoleWithWebIdentity"] >= 2


def test_keys_valid_an_hour_are_reused(emu: Emulator, tmp_path: Path) -> None:
    """Outside the refresh window botocore keeps the keys: one token exchange for many calls."""
    lm_client, provider = client(secret_dir(tmp_path))
    for n in range(3):
        checkout(lm_client, str(n) * 64)
    assert provider.refreshes == 1


def test_a_revoked_license_token_is_a_permanent_refusal(emu: Emulator, tmp_path: Path) -> None:
    """An unknown license token: AuthorizationException, surfaced through the signed call."""
    lm_client, _ = client(secret_dir(tmp_path, token="revoked-token"))
    with pytest.raises(PermanentError) as caught:
        checkout(lm_client, "d" * 64)
    assert caught.value.code == "AuthorizationException"


def test_a_role_the_token_does_not_name_is_refused(emu: Emulator, tmp_path: Path) -> None:
    """STS refuses a role the license token was not issued for (AccessDenied, permanent)."""
    other = ROLE.replace("consumer", "admin")
    lm_client, _ = client(secret_dir(tmp_path, role=other))
    with pytest.raises(PermanentError) as caught:
        checkout(lm_client, "e" * 64)
    assert caught.value.code == "AccessDenied"


@pytest.mark.parametrize(
    ("files", "words"),
    [({}, "cannot read"), ({"license_token": "t", "iam_role": "admin"}, "IAM role ARN"),
     ({"license_token": "", "iam_role": ROLE}, "empty")],
    ids=["not-mounted", "not-a-role", "empty-token"],
)  # fmt: skip
def test_a_bad_secret_is_a_configuration_error(
    tmp_path: Path, files: dict[str, str], words: str
) -> None:
    """Missing files, a malformed role, an empty token: one line naming the setting."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    secret = anywhere.SecretFiles(str(tmp_path), "ENTITLEMENT_LICENSE_ANYWHERE_DIR")
    with pytest.raises(ConfigurationError, match=words) as caught:
        secret.check()
    assert caught.value.variable == "ENTITLEMENT_LICENSE_ANYWHERE_DIR"


@pytest.mark.parametrize(
    "instance", ["7c9e6679-7425-40de-944b-e07fc1f90ae7", "arn:aws:ecs:x/y", "é" * 90]
)
def test_session_names_fit_the_model(instance: str) -> None:
    """Any instance id becomes a RoleSessionName STS accepts (2-64 of [\\w+=,.@-])."""
    import re

    from entitlement_sidecar.aws import rules

    assert re.fullmatch(rules.ROLE_SESSION_NAME, anywhere.session_name(instance), re.ASCII)
