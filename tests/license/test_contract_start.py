"""The License Manager start gate as real `run` / `register` processes against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import Emulator

from .conftest import (
    DRAW,
    SEATS,
    TIERS,
    Pods,
    check,
    kill_tree,
    seat_license,
    seats_in_use,
    status_of,
    tier_license,
)

LICENSES: list[dict[str, Any]] = [
    tier_license("basic", "pro"),
    seat_license(seats=2),
    {"sku": DRAW, "entitlements": [{"name": "deployments", "unit": "Count", "max_count": 5}]},
    seat_license("prod-self", fingerprint="aws:210987654321:Buyer/Self:issuer-fingerprint"),
    seat_license("prod-eu", home_region="eu-west-1"),
    seat_license("prod-old", valid_until="2020-01-01T00:00:00Z", valid_from="2019-01-01T00:00:00Z"),
]


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    with Emulator({"licenses": LICENSES}) as emu:
        yield emu


@pytest.fixture
def emu(shared: Emulator) -> Emulator:
    shared.set_scenario({"licenses": LICENSES})
    shared.reset()
    return shared


Make = Callable[[Emulator], Pods]


def test_a_tiered_license_reports_the_tier_granted(emu: Emulator, pods: Make) -> None:
    """basic,pro,enterprise against a basic+pro license: ready, tier pro, entitlements.json."""
    pod = pods(emu).start("tiered", TIERS, "basic,pro,enterprise")
    pod.wait_ready()
    doc = status_of(pod)
    assert (doc["mode"], doc["state"], doc["license"]["tier"]) == (
        "license-manager",
        "entitled",
        "pro",
    )
    assert doc["license"]["entitlements"] == {"basic": True, "pro": True}
    assert json.loads(
        (Path(pod.env["ENTITLEMENT_STATUS_DIR"]) / "entitlements.json").read_text()
    ) == {
        "basic": True,
        "pro": True,
    }
    assert (check(pod), check(pod, "--verify"), check(pod, "--entitlement", "pro")) == (0, 0, 0)
    assert check(pod, "--entitlement", "enterprise") == 1
    assert doc["license"]["seat_held"] is False  # tiers hold nothing
    assert seats_in_use(emu, TIERS) == 0
    metrics = pod.get("/metrics")[1]
    assert 'entitlement_sidecar_license_entitlement{name="pro"} 1' in metrics
    assert 'entitlement_sidecar_mode{mode="license-manager"} 1' in metrics


def test_a_floating_seat_is_held_and_returned_at_sigterm(emu: Emulator, pods: Make) -> None:
    """seats=1: one seat held while running, none after SIGTERM (exit 0)."""
    pod = pods(emu).start("floating")
    pod.wait_ready()
    assert status_of(pod)["license"]["seat_held"] is True
    assert seats_in_use(emu) == 1
    code, stderr = pod.stop(timeout=30)
    assert code == 0, stderr
    assert seats_in_use(emu) == 0
    assert "seat returned" in stderr


def test_drawdown_is_taken_once_per_pod(emu: Emulator, pods: Make) -> None:
    """perpetual: a unit drawn at start, not drawn again when the container restarts."""
    group = pods(emu)
    env = group.env("draw", DRAW, "deployments=1", ENTITLEMENT_LICENSE_CHECKOUT="perpetual")
    first = group.run(env)
    first.wait_ready()
    first.stop(timeout=30)
    again = group.run(env)
    again.wait_ready()
    assert status_of(again)["license"]["result"] == "reused"
    [drawn] = [lic for lic in emu.licenses() if lic["sku"] == DRAW]
    assert drawn["entitlements"][0]["drawn_down"] == 1


@pytest.mark.parametrize(
    ("sku", "reason"),
    [
        ("prod-none", "LicenseNotFound"),
        ("prod-self", "UntrustedIssuer"),
        ("prod-old", "LicenseExpired"),
    ],
    ids=["no-license", "self-issued-license", "expired-license"],
)
def test_a_refusal_says_which_cause_is_most_likely(
    emu: Emulator, pods: Make, sku: str, reason: str
) -> None:
    """Retried once, then ListReceivedLicenses/GetLicense name the cause; never ready."""
    pod = pods(emu).start("refused", sku)
    doc = pod.wait_state("denied")
    assert (doc["reason"], doc["license"]["result"]) == (reason, "denied")
    assert doc["attempt_results"] == {"NoEntitlementsAllowedException": 2}
    assert pod.get("/readyz")[0] == 503
    assert check(pod) == 1
    assert (
        json.loads((Path(pod.env["ENTITLEMENT_STATUS_DIR"]) / "entitlements.json").read_text())
        == {}
    )


def test_the_wrong_region_is_followed_once(emu: Emulator, pods: Make) -> None:
    """A pod configured for us-east-1 follows RedirectException to eu-west-1 and remembers it."""
    pod = pods(emu).start("redirected", "prod-eu")
    pod.wait_ready()
    doc = status_of(pod)
    assert doc["license"]["region"] == "eu-west-1"
    assert doc["attempt_results"] == {"RedirectException": 1, "Success": 1}


def test_a_restarted_container_reuses_its_own_seat(emu: Emulator, pods: Make) -> None:
    """A crashed sidecar (no check-in) restarted in the same pod extends its seat: still one."""
    group = pods(emu)
    env = group.env("crashy", SEATS, "seats=1")
    first = group.run(env)
    first.wait_ready()
    token = emu.licenses()[1]["consumptions"][0]["token"]
    kill_tree(first)
    assert seats_in_use(emu) == 1
    again = group.run(env)
    again.wait_ready()
    assert status_of(again)["license"]["result"] == "reused"
    assert seats_in_use(emu) == 1
    assert [c["token"] for c in emu.licenses()[1]["consumptions"]] == [token]


def test_a_checkout_whose_answer_was_lost_is_replayed_not_repeated(
    emu: Emulator, pods: Make
) -> None:
    """seat.json pending under a ClientToken that did reach AWS: the restart gets that seat."""
    import boto3

    group = pods(emu)
    env = group.env("lost-answer", SEATS, "seats=1")
    client_token = "f" * 64
    landed = (
        boto3.session.Session()
        .client(
            "license-manager",
            region_name="us-east-1",
            endpoint_url=emu.url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        .checkout_license(
            ProductSKU=SEATS,
            CheckoutType="PROVISIONAL",
            KeyFingerprint=rules.MARKETPLACE_ISSUER_FINGERPRINT,
            Entitlements=[{"Name": "seats", "Unit": "Count", "Value": "1"}],
            ClientToken=client_token,
        )
    )
    seat = {
        "version": 1, "instance": "uid-lost-answer", "sku": SEATS, "region": "us-east-1",
        "client_token": client_token, "checkout_type": "PROVISIONAL", "state": "pending",
        "consumption_token": None, "license_arn": None, "expiration": None, "entitlements": {},
        "consuming": True,
    }  # fmt: skip
    (Path(env["ENTITLEMENT_STATUS_DIR"]) / "seat.json").write_text(json.dumps(seat))
    pod = group.run(env)
    pod.wait_ready()
    assert seats_in_use(emu) == 1
    assert emu.licenses()[1]["consumptions"][0]["token"] == landed["LicenseConsumptionToken"]


def test_an_untrusted_sku_is_refused_before_any_call(emu: Emulator, pods: Make) -> None:
    """The image's SKU allow-list stops a swapped SKU; AWS is not called."""
    pod = pods(emu).start("swapped", TIERS, "basic", ENTITLEMENT_TRUSTED_PRODUCT_SKUS=SEATS)
    assert pod.wait_state("denied")["reason"] == "UntrustedProductSku"
    assert "CheckoutLicense" not in emu.records()["requests"]


def test_a_signed_token_is_verified_with_the_images_key(emu: Emulator, pods: Make) -> None:
    """With the issuer's key: verified, and check --verify re-verifies token.jwt."""
    key = str(emu.public_key_dir / "license-issuer.pem")
    pod = pods(emu).start("signed", ENTITLEMENT_LICENSE_TOKEN_KEY=key)
    pod.wait_ready()
    doc = status_of(pod)
    assert (doc["signature_verified"], doc["license"]["signed_token_verified"]) == (True, True)
    assert check(pod, "--verify") == 0


def test_a_token_that_does_not_verify_denies_and_returns_the_seat(
    emu: Emulator, pods: Make, tmp_path: Path
) -> None:
    """Another key: SignatureInvalid, and the seat goes straight back to the pool."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = tmp_path / "other.pem"
    pem.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pod = pods(emu).start("forged", ENTITLEMENT_LICENSE_TOKEN_KEY=str(pem))
    assert pod.wait_state("denied")["reason"] == "SignatureInvalid"
    assert seats_in_use(emu) == 0


def test_missing_entitlements_stop_run_with_exit_2(emu: Emulator, pods: Make) -> None:
    """PRODUCT_SKU without LICENSE_ENTITLEMENTS is one line naming the variable, exit 2."""
    group = pods(emu)
    env = group.env("unset", SEATS, "seats=1")
    del env["ENTITLEMENT_LICENSE_ENTITLEMENTS"]
    pod = group.run(env)
    code, stderr = pod.stop(timeout=30) if pod.process.wait(30) is not None else (None, "")
    assert code == 2
    assert "ENTITLEMENT_LICENSE_ENTITLEMENTS" in stderr
