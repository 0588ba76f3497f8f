"""The License Manager boundary: real boto3 against the emulator, answers and errors as ours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from entitlement_sidecar.aws import license_manager as lm
from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.errors import ConfigurationError, PermanentError, TransientError

SKU = "prod-contract"
SEAT = [lm.Entitlement("seats", "Count", "1")]
LICENSES: list[dict[str, Any]] = [
    {"sku": SKU, "entitlements": [{"name": "seats", "unit": "Count", "max_count": 1}]},
    {"sku": "prod-eu", "home_region": "eu-west-1", "entitlements": [{"name": "pro"}]},
    *(
        {
            "sku": "prod-many",
            "arn": f"arn:aws:license-manager::123456789012:license:l-many{n}",
            "entitlements": [{"name": "pro"}],
        }
        for n in range(3)
    ),
]


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    with Emulator({"licenses": LICENSES}) as emu:
        yield emu


@pytest.fixture
def emu(shared: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    shared.set_scenario({"licenses": LICENSES})
    shared.reset()
    for name, value in shared.env(access_key_id="AKIDBOUNDARY").items():
        monkeypatch.setenv(name, value)
    return shared


def fault(kind: str, **extra: str) -> dict[str, Any]:
    return {"faults": [{"op": "CheckoutLicense", "kind": kind, **extra}]}


def checkout(client: Any, sku: str = SKU, token: str = "a" * 64) -> lm.Checkout:
    return lm.checkout(
        client, sku=sku, checkout_type=lm.PROVISIONAL, entitlements=SEAT, client_token=token
    )


def test_a_checkout_reads_into_a_value(emu: Emulator) -> None:
    """Token, granted entitlements, ARN and aware expiration come back as plain values."""
    answer = checkout(lm.make_client("us-east-1"))
    assert answer.allowed == (lm.Entitlement("seats", "Count", "1"),)
    assert answer.checkout_type == lm.PROVISIONAL
    assert isinstance(answer.expiration, datetime)
    assert answer.expiration.tzinfo is not None
    assert answer.license_arn is not None
    assert answer.signed_token is not None


@pytest.mark.parametrize(
    ("scenario", "code", "kind"),
    [
        ({"throttle": {"CheckoutLicense": 0.001}}, "RateLimitExceededException", TransientError),
        (fault("internal_error"), "ServerInternalException", TransientError),
        (fault("http_503"), "HTTP503", TransientError),
        (fault("drop"), "NetworkError", TransientError),
        (fault("error", code="AccessDeniedException"), "AccessDeniedException", PermanentError),
    ],
    ids=["rate-limited", "server-fault", "load-balancer-503", "dropped", "access-denied"],
)
def test_failures_carry_their_retry_meaning(
    emu: Emulator, scenario: dict[str, Any], code: str, kind: type[Exception]
) -> None:
    """Rate limits, faults and the network are transient; AWS's other answers permanent."""
    emu.set_scenario({"licenses": LICENSES, **scenario})
    client = lm.make_client("us-east-1")
    if "throttle" in scenario:
        checkout(client, token="b" * 64)  # the bucket's one token
    with pytest.raises(kind) as caught:
        checkout(client)
    assert caught.value.code == code  # type: ignore[attr-defined]


def test_no_license_is_permanent_and_a_redirect_names_its_region(emu: Emulator) -> None:
    """NoEntitlementsAllowedException stays AWS's code; RedirectException becomes `Redirect`."""
    client = lm.make_client("us-east-1")
    with pytest.raises(PermanentError) as caught:
        checkout(client, "prod-none")
    assert caught.value.code == lm.NO_ENTITLEMENTS
    with pytest.raises(lm.Redirect) as redirected:
        lm.checkout(
            client,
            sku="prod-eu",
            checkout_type=lm.PROVISIONAL,
            entitlements=[lm.Entitlement("pro")],
            client_token="c" * 64,
        )
    assert redirected.value.region == "eu-west-1"


def test_licenses_are_listed_across_pages_and_read(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page of ListReceivedLicenses is read; GetLicense gives issuer, validity, units."""
    monkeypatch.setattr(lm, "_PAGE_SIZE", 2)
    client = lm.make_client("us-east-1")
    found = sorted(lic.arn[-5:] for lic in lm.received_licenses(client, "prod-many"))
    assert found == ["many0", "many1", "many2"]
    assert emu.records()["requests"]["ListReceivedLicenses"] == 2
    arn = checkout(client).license_arn or ""
    license_ = lm.get_license(client, arn)
    assert license_.from_marketplace
    assert license_.status == "AVAILABLE"
    assert license_.provisional_ttl_minutes == rules.PROVISIONAL_TTL_MINUTES
    assert lm.LicenseEntitlement("seats", "Count", 1, False, True) in license_.entitlements


@pytest.mark.parametrize(
    ("location", "region"),
    [
        ("https://license-manager.eu-west-1.amazonaws.com", "eu-west-1"),
        ("eu-central-1", "eu-central-1"),
        ("https://license-manager-fips.us-gov-west-1.amazonaws.com/", "us-gov-west-1"),
        ("somewhere else", None),
        (None, None),
    ],
    ids=["endpoint-url", "bare-region", "fips-endpoint", "garbage", "absent"],
)
def test_the_region_of_a_redirect_location(location: str | None, region: str | None) -> None:
    """Location may be an endpoint URL or a Region name (AWS does not document which)."""
    assert lm.region_of(location) == region


@pytest.mark.parametrize(
    "sku", ["", "has space", "a,b", "x" * 256], ids=["empty", "space", "comma", "long"]
)
def test_a_bad_sku_is_refused_before_any_call(sku: str) -> None:
    """The SKU is checked against our rule before boto3 sees it."""
    with pytest.raises(ConfigurationError):
        lm.validate_sku(sku)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-12-01T12:00:00Z", 1796126400.0),
        ("2026-12-01T12:00:00.5+00:00", 1796126400.5),
        ("soon", None),
        (7, None),
    ],
    ids=["zulu", "offset-fraction", "words", "number"],
)
def test_times_parse_only_in_the_models_format(text: object, epoch: float | None) -> None:
    """ISO 8601 as the model's pattern says, else None."""
    parsed = lm.parse_time(text)
    assert (parsed.timestamp() if parsed else None) == epoch
