"""One registration against the emulator (real HTTP, real boto3): every outcome and its status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.errors import TRANSIENT_CODES
from entitlement_sidecar.sidecar import registration, status
from entitlement_sidecar.sidecar.settings import SidecarSettings

from .conftest import INSTANCE, PRODUCT, cli, sidecar_env


def _register_usage_errors() -> list[str]:
    model = botocore.session.get_session().get_service_model("meteringmarketplace")
    return sorted(shape.name for shape in model.operation_model("RegisterUsage").error_shapes)


PERMANENT = [code for code in _register_usage_errors() if code not in TRANSIENT_CODES]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point boto3 (in this process) at an emulator built from a scenario; scrub the rest."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "ENTITLEMENT_", "POD_", "ECS_")):
            monkeypatch.delenv(name)
    emulators: list[Emulator] = []

    def start(scenario: dict[str, Any] | None = None) -> Emulator:
        emu = Emulator(scenario).start()
        emulators.append(emu)
        for name, value in emu.env(access_key_id="AKIDPOD1").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("POD_UID", INSTANCE)
        return emu

    yield start
    for emu in emulators:
        emu.stop()


def _settings(emu: Emulator, tmp_path: Path, **overrides: Any) -> SidecarSettings:
    values: dict[str, Any] = {
        "product_code": PRODUCT,
        "public_keys": emu.public_key_dir,
        "status_dir": tmp_path,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "startup_timeout": 20,
        **overrides,
    }
    return SidecarSettings(**values)


def _register(emu: Emulator, tmp_path: Path, **overrides: Any) -> tuple[int, dict[str, Any]]:
    import os

    code = registration.register(_settings(emu, tmp_path, **overrides), os.environ)
    return code, status.read(str(tmp_path)) or {}


def _scenario(**product: Any) -> dict[str, Any]:
    return {"products": {PRODUCT: {"entitled": True, **product}}}


def test_an_entitled_product_writes_status_and_token(aws_env: Any, tmp_path: Path) -> None:
    """Entitled: exit 0, state entitled, token.jwt present, nonce bound to this pod."""
    emu = aws_env()
    code, doc = _register(emu, tmp_path)
    assert (code, doc["state"], doc["entitled"]) == (0, "entitled", True)
    assert (
        doc["instance"],
        doc["instance_kind"],
        doc["attempts"],
        doc["signature_verified"],
    ) == (INSTANCE, "pod", 1, True)
    assert doc["nonce"].startswith(INSTANCE + ":")
    registration = emu.records()["registrations"][0]
    assert (doc["nonce"], registration["signature"]) == (
        registration["nonce"],
        status.read_token(str(tmp_path)),
    )


@pytest.mark.parametrize("error", PERMANENT, ids=PERMANENT)
def test_every_permanent_error_denies_without_retrying(
    aws_env: Any, tmp_path: Path, error: str
) -> None:
    """A permanent RegisterUsage error: exit 1, state denied, the AWS code as reason, one call."""
    emu = aws_env(_scenario(error=error))
    code, doc = _register(emu, tmp_path)
    assert (1, "denied", error, 1) == (code, doc["state"], doc["reason"], doc["attempts"])
    assert status.read_token(str(tmp_path)) is None


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "internal_error", "count": 2}, "InternalServiceErrorException"),
        ({"kind": "throttle", "count": 2}, "ThrottlingException"),
        ({"kind": "http_503", "count": 2}, None),
        ({"kind": "drop", "count": 2}, "NetworkError"),
    ],
    ids=["internal-error", "throttle", "http-503", "dropped-connection"],
)
def test_transient_failures_are_retried_until_success(
    aws_env: Any, tmp_path: Path, fault: dict[str, Any], reason: str | None
) -> None:
    """Two transient failures, then success: entitled after three attempts, each one counted."""
    emu = aws_env({**_scenario(), "faults": [{"op": "RegisterUsage", **fault}]})
    code, doc = _register(emu, tmp_path)
    assert (code, doc["state"], doc["attempts"]) == (0, "entitled", 3)
    assert doc["attempt_results"]["Success"] == 1
    failures = {k: v for k, v in doc["attempt_results"].items() if k != "Success"}
    assert sum(failures.values()) == 2
    if reason:
        assert {reason: 2} == failures


def test_budget_exhaustion_is_unavailable(aws_env: Any, tmp_path: Path) -> None:
    """Transient failures until STARTUP_TIMEOUT: exit 3, state unavailable, last code as reason."""
    emu = aws_env({**_scenario(), "faults": [{"op": "RegisterUsage", "kind": "internal_error"}]})
    code, doc = _register(emu, tmp_path, startup_timeout=0.5)
    assert (
        code,
        doc["state"],
        doc["reason"],
    ) == (3, "unavailable", "InternalServiceErrorException")
    assert doc["attempts"] >= 2


def test_a_forged_token_is_denied(aws_env: Any, tmp_path: Path) -> None:
    """A token signed with a key not in the ring: denied, SignatureInvalid, no token kept."""
    emu = aws_env(_scenario(sign_with_unlisted_key=True))
    code, doc = _register(emu, tmp_path)
    assert (code, doc["state"], doc["reason"]) == (1, "denied", "SignatureInvalid")
    assert status.read_token(str(tmp_path)) is None


def test_pascal_case_claims_from_the_service_are_accepted(aws_env: Any, tmp_path: Path) -> None:
    """The emulator answering PascalCase claims still gives an entitled, verified result."""
    emu = aws_env({**_scenario(), "claims_case": "pascal"})
    assert _register(emu, tmp_path)[0] == 0


def test_key_rotation_is_surfaced(aws_env: Any, tmp_path: Path) -> None:
    """PublicKeyRotationTimestamp from the service lands in status (still entitled)."""
    emu = aws_env({**_scenario(), "expired_key_versions": [1]})
    code, doc = _register(emu, tmp_path)
    assert code == 0
    assert doc["public_key_rotation_at"] is not None


def test_an_untrusted_product_code_is_denied_before_calling_aws(
    aws_env: Any, tmp_path: Path
) -> None:
    """A product code outside TRUSTED_PRODUCT_CODES is denied with no RegisterUsage call."""
    emu = aws_env()
    code, doc = _register(emu, tmp_path, trusted_product_codes=frozenset({"prod-other"}))
    assert (code, doc["state"], doc["reason"]) == (1, "denied", "UntrustedProductCode")
    assert emu.records()["registrations"] == []


def test_disabling_verification_accepts_but_says_so(aws_env: Any, tmp_path: Path) -> None:
    """VERIFY_SIGNATURE=false accepts a forged token but records signature_verified false."""
    emu = aws_env(_scenario(sign_with_unlisted_key=True))
    code, doc = _register(emu, tmp_path, verify_signature=False)
    assert (code, doc["signature_verified"]) == (0, False)


def test_a_fresh_nonce_is_used_for_every_attempt(aws_env: Any, tmp_path: Path) -> None:
    """Retries never reuse a nonce, and the status records the one that succeeded."""
    emu = aws_env(
        {**_scenario(), "faults": [{"op": "RegisterUsage", "kind": "throttle", "count": 2}]}
    )
    _code, doc = _register(emu, tmp_path)
    nonces = [r["nonce"] for r in emu.records()["registrations"]]
    assert doc["nonce"] == nonces[-1]
    assert len(nonces) == len(set(nonces))


@pytest.mark.parametrize(
    ("scenario", "extra", "expected"),
    [
        (None, {}, 0),
        ({"products": {PRODUCT: {"entitled": False}}}, {}, 1),
        (None, {"ENTITLEMENT_PRODUCT_CODE": ""}, 2),
        (None, {"ENTITLEMENT_STATUS_DIR": "/nonexistent/status"}, 2),
        (
            {**_scenario(), "faults": [{"op": "RegisterUsage", "kind": "internal_error"}]},
            {"ENTITLEMENT_STARTUP_TIMEOUT": "0.5"},
            3,
        ),
    ],
    ids=["entitled-0", "denied-1", "invalid-config-2", "unwritable-status-2", "budget-exhausted-3"],
)
def test_register_command_exit_codes(
    tmp_path: Path, scenario: dict[str, Any] | None, extra: dict[str, str], expected: int
) -> None:
    """`entitlement-sidecar register` exits 0/1/2/3 as documented, without a traceback."""
    with Emulator(scenario) as emu:
        result = cli("register", env=sidecar_env(emu, tmp_path, **extra))
    assert expected == result.returncode, result.stderr
    assert "Traceback" not in result.stderr


def test_a_denial_is_final_for_the_pod(aws_env: Any, tmp_path: Path) -> None:
    """A restarted sidecar in a denied pod stays denied and never asks AWS a second time.

    AWS answers only a pod's first RegisterUsage with a denial (the emulator does the same), so a
    second call would entitle a pod the buyer is not subscribed to.
    """
    emu = aws_env(_scenario(entitled=False))
    first_code, first = _register(emu, tmp_path)
    again_code, again = _register(emu, tmp_path)
    assert (
        first_code,
        first["state"],
        first["reason"],
    ) == (1, "denied", "CustomerNotEntitledException")
    assert (
        again_code,
        again["state"],
        again["reason"],
        again["attempts"],
    ) == (1, "denied", "CustomerNotEntitledException", 1)
    assert "denied earlier" in again["message"]
    assert emu.records()["requests"]["RegisterUsage"] == 1
    assert status.read_token(str(tmp_path)) is None


def test_another_instance_is_not_bound_by_a_denial(
    aws_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status left by another pod (or product) does not stop this one from registering."""
    emu = aws_env(_scenario(entitled=False))
    assert _register(emu, tmp_path)[0] == 1
    monkeypatch.setenv("POD_UID", "another-pod-uid")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPOD2")
    code, doc = _register(emu, tmp_path)
    assert (code, doc["instance"]) == (1, "another-pod-uid")
    assert emu.records()["requests"]["RegisterUsage"] == 2


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        ({"state": "denied", "reason": "X", "attempts": 1}, "X"),
        ({"state": "denied", "reason": "X", "attempts": 0}, None),
        ({"state": "denied", "reason": "X", "attempts": True}, None),
        ({"state": "unavailable", "reason": "HTTP503", "attempts": 40}, None),
        ({"state": "entitled", "attempts": 1}, None),
        ({"state": "denied", "reason": "X", "attempts": 1, "instance": "other"}, None),
        ({"state": "denied", "reason": "X", "attempts": 1, "product_code": "other"}, None),
        (None, None),
    ],
    ids=[
        "denied-after-calling",
        "denied-before-calling",
        "bool-attempts",
        "unavailable",
        "entitled",
        "other-instance",
        "other-product",
        "no-status",
    ],
)
def test_which_earlier_outcomes_are_final(
    previous: dict[str, Any] | None, expected: str | None
) -> None:
    """Only a denial of this instance and product that followed an AWS call is final."""
    if previous is not None:
        previous = {"instance": INSTANCE, "product_code": PRODUCT, **previous}
    earlier = registration.earlier_denial(previous, INSTANCE, PRODUCT)
    assert expected == (earlier[0] if earlier else None)
