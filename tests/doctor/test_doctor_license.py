"""The doctor in License Manager mode: the licenses the gate would find, never a checkout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env

from .conftest import doctor, register

SKU = "prod-doctor-seats"
LICENSES: list[dict[str, Any]] = [
    {"sku": SKU, "entitlements": [{"name": "seats", "unit": "Count", "max_count": 2}]},
    {
        "sku": "prod-self-issued",
        "fingerprint": "aws:210987654321:Buyer/Self:issuer-fingerprint",
        "entitlements": [{"name": "seats", "unit": "Count", "max_count": 2}],
    },
    {
        "sku": "prod-expired",
        "valid_from": "2019-01-01T00:00:00Z",
        "valid_until": "2020-01-01T00:00:00Z",
        "entitlements": [{"name": "pro"}],
    },
]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator({"licenses": LICENSES}) as emulator:
        yield emulator


def contract_env(emu: Emulator, status_dir: Path, **extra: str) -> dict[str, str]:
    status_dir.mkdir(parents=True, exist_ok=True)
    values = {
        **emu.env(access_key_id="AKIDDOCTORLM"),
        "ENTITLEMENT_PRODUCT_SKU": SKU,
        "ENTITLEMENT_LICENSE_ENTITLEMENTS": "seats=1",
        "ENTITLEMENT_STATUS_DIR": str(status_dir),
        "ENTITLEMENT_INSTANCE_ID": "doctor-pod",
        **extra,
    }
    return clean_env(**values)


def test_a_contract_pod_passes_without_any_seat_taken(emu: Emulator, tmp_path: Path) -> None:
    """License Manager checks replace the RegisterUsage ones; nothing is checked out."""
    emu.reset()
    result = doctor(contract_env(emu, tmp_path / "status"))
    assert result.code == 0, result.checks
    assert "key-ring" not in result.checks
    assert "trusted-codes" not in result.checks
    assert result.status()["license"] == "ok"
    assert "grants seats=2" in result.checks["license"]["found"]
    assert "License Manager mode" in result.checks["settings"]["found"]
    assert sum(int(lic["seats_in_use"]) for lic in emu.licenses()) == 0
    assert emu.records()["requests"].get("CheckoutLicense", 0) == 0


def test_after_a_checkout_the_doctor_says_what_it_answered(emu: Emulator, tmp_path: Path) -> None:
    """status.json's last checkout result is quoted beside the license."""
    env = contract_env(emu, tmp_path / "status")
    register(env)
    result = doctor(env)
    assert "the last one ended" in result.checks["license"]["found"]


def test_free_seats_are_counted_without_taking_one(emu: Emulator, tmp_path: Path) -> None:
    """GetLicenseUsage tells the seats in use; with none left a new pod would wait (a warning)."""
    emu.reset()
    first = contract_env(emu, tmp_path / "one", ENTITLEMENT_INSTANCE_ID="pod-one")
    register(first)
    line = doctor(first).checks["license"]
    assert (line["status"], "seats: 1 of 2 in use" in line["found"]) == ("ok", True), line
    register(contract_env(emu, tmp_path / "two", ENTITLEMENT_INSTANCE_ID="pod-two"))
    result = doctor(first)
    line = result.checks["license"]
    assert (result.code, line["status"]) == (0, "warn"), line
    assert "seats: 2 of 2 in use: no free unit of seats for a new pod now" in line["found"]
    assert "seat is returned" in line["fix"]
    assert sum(int(lic["seats_in_use"]) for lic in emu.licenses()) == 2  # the doctor took none


@pytest.mark.parametrize(
    ("sku", "entitlements", "reason"),
    [
        ("prod-nobody-bought", "seats=1", "LicenseNotFound"),
        ("prod-self-issued", "seats=1", "UntrustedIssuer"),
        ("prod-expired", "pro", "LicenseExpired"),
        (SKU, "seats=5", "EntitlementNotInLicense"),
    ],
)
def test_each_license_problem_is_named_with_its_fix(
    emu: Emulator, tmp_path: Path, sku: str, entitlements: str, reason: str
) -> None:
    """The start gate's diagnosis, before any pod is refused: the reason and what to do."""
    env = contract_env(
        emu,
        tmp_path / "status",
        ENTITLEMENT_PRODUCT_SKU=sku,
        ENTITLEMENT_LICENSE_ENTITLEMENTS=entitlements,
    )
    result = doctor(env)
    assert result.code == 1
    license_ = result.checks["license"]
    assert (license_["status"], license_["found"].split(":")[0]) == ("fail", reason)
    assert license_["fix"]


def test_an_unbaked_sku_is_a_warning(emu: Emulator, tmp_path: Path) -> None:
    """A SKU only the pod spec names (no allow-list, nothing baked) is worth a warning."""
    result = doctor(contract_env(emu, tmp_path / "status"))
    assert result.status()["product-sku"] == "warn"
    allowed = doctor(contract_env(emu, tmp_path / "status", ENTITLEMENT_TRUSTED_PRODUCT_SKUS=SKU))
    assert allowed.status()["product-sku"] == "ok"


def test_a_missing_anywhere_secret_fails_the_identity(emu: Emulator, tmp_path: Path) -> None:
    """Containers Anywhere without the buyer's Secret mounted: identity fails, naming it."""
    env = contract_env(
        emu, tmp_path / "status", ENTITLEMENT_LICENSE_ANYWHERE_DIR=str(tmp_path / "no-secret")
    )
    result = doctor(env)
    assert result.status()["identity"] == "fail"
    assert "license.anywhere.secretName" in result.checks["identity"]["fix"]
