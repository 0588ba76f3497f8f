"""The emulated License Manager (same process and port as Metering), through real boto3 clients."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.server import DUMMY_SECRET

SKU = "prod-contract"
FP = rules.MARKETPLACE_ISSUER_FINGERPRINT
ROLE = "arn:aws:iam::123456789012:role/buyer-license-role"
LICENSES: list[dict[str, Any]] = [
    {
        "sku": SKU,
        "entitlements": [{"name": "seats", "unit": "Count", "max_count": 2}],
        "tokens": {"buyer-license-token": ROLE},
    },
    {
        "sku": "prod-tiers",
        "entitlements": [{"name": "basic"}, {"name": "pro"}],
    },
    {
        "sku": "prod-draw",
        "entitlements": [{"name": "deployments", "unit": "Count", "max_count": 3}],
    },
    {
        "sku": "prod-selfissued",
        "fingerprint": "aws:123456789012:Self/Issued:issuer-fingerprint",
        "entitlements": [{"name": "seats", "unit": "Count", "max_count": 100}],
    },
    {
        "sku": "prod-eu",
        "home_region": "eu-west-1",
        "entitlements": [{"name": "seats", "unit": "Count", "max_count": 1}],
    },
]
SCENARIO: dict[str, Any] = {"licenses": LICENSES}


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    with Emulator(SCENARIO) as emu:
        yield emu


@pytest.fixture
def emu(shared: Emulator) -> Emulator:
    """The license scenario, no seats held, no records."""
    shared.set_scenario(SCENARIO)
    shared.reset()
    return shared


def lm(emu: Emulator, akid: str = "AKIDPOD1", region: str = "us-east-1", **config: Any) -> Any:
    """A real boto3 License Manager client signed as `akid` (one pod), no retries."""
    return boto3.session.Session().client(
        "license-manager",
        region_name=region,
        endpoint_url=emu.url,
        aws_access_key_id=akid,
        aws_secret_access_key=DUMMY_SECRET,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def checkout(client: Any, sku: str = SKU, *, token: str = "t1", **kwargs: Any) -> dict[str, Any]:  # noqa: S107
    params: dict[str, Any] = {
        "ProductSKU": sku,
        "CheckoutType": "PROVISIONAL",
        "KeyFingerprint": FP,
        "Entitlements": [{"Name": "seats", "Unit": "Count", "Value": "1"}],
        "ClientToken": token,
    }
    params.update(kwargs)
    answer: dict[str, Any] = client.checkout_license(**params)
    return answer


def code_of(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


def seats(emu: Emulator, sku: str = SKU) -> int:
    [found] = [lic for lic in emu.licenses() if lic["sku"] == sku]
    return int(found["seats_in_use"])


def shift(emu: Emulator, seconds: float) -> None:
    """Move the emulator clock (a scenario swap: seats and tokens are kept)."""
    emu.set_scenario({**SCENARIO, "clock_offset_seconds": seconds})


def test_a_floating_seat_is_held_until_checked_in(emu: Emulator) -> None:
    """Two seats: two pods hold them, a third is refused, a check-in frees one for it."""
    first = checkout(lm(emu, "AKIDPOD1"), token="a")
    checkout(lm(emu, "AKIDPOD2"), token="b")
    assert seats(emu) == 2
    with pytest.raises(ClientError) as caught:
        checkout(lm(emu, "AKIDPOD3"), token="c")
    assert code_of(caught) == "NoEntitlementsAllowedException"
    lm(emu, "AKIDPOD1").check_in_license(LicenseConsumptionToken=first["LicenseConsumptionToken"])
    assert seats(emu) == 1
    third = checkout(lm(emu, "AKIDPOD3"), token="c2")
    assert third["EntitlementsAllowed"] == [{"Name": "seats", "Unit": "Count", "Value": "1"}]
    assert third["CheckoutType"] == "PROVISIONAL"
    assert third["LicenseArn"].startswith("arn:aws:license-manager::123456789012:license:l-")


def test_the_answer_matches_the_model(emu: Emulator) -> None:
    """Times follow the model's ISO8601DateTime pattern; the TTL is 60 minutes."""
    answer = checkout(lm(emu))
    for key in ("IssuedAt", "Expiration"):
        assert __import__("re").fullmatch(rules.ISO8601_DATETIME, answer[key])
    issued = datetime.fromisoformat(answer["IssuedAt"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(answer["Expiration"].replace("Z", "+00:00"))
    assert expires - issued == timedelta(minutes=60)
    assert answer["SignedToken"].count(".") == 2


def test_a_seat_returns_after_its_time_to_live_unless_extended(emu: Emulator) -> None:
    """Past the TTL the seat is free and its token is gone; an extension moves the TTL on."""
    kept = checkout(lm(emu, "AKIDPOD1"), token="kept")["LicenseConsumptionToken"]
    lost = checkout(lm(emu, "AKIDPOD2"), token="lost")["LicenseConsumptionToken"]
    shift(emu, 50 * 60)
    extended = lm(emu, "AKIDPOD1").extend_license_consumption(LicenseConsumptionToken=kept)
    assert extended["LicenseConsumptionToken"] == kept
    shift(emu, 61 * 60)
    assert seats(emu) == 1
    with pytest.raises(ClientError) as caught:
        lm(emu, "AKIDPOD2").extend_license_consumption(LicenseConsumptionToken=lost)
    assert code_of(caught) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        lm(emu, "AKIDPOD2").check_in_license(LicenseConsumptionToken=lost)
    assert code_of(caught) == "ResourceNotFoundException"


def test_tiers_are_answered_with_what_the_buyer_holds(emu: Emulator) -> None:
    """Asking for every tier with unit None grants the ones on the license; none: refused."""
    client = lm(emu)
    wanted = [{"Name": n, "Unit": "None"} for n in ("basic", "pro", "enterprise")]
    answer = checkout(client, "prod-tiers", Entitlements=wanted)
    assert [e["Name"] for e in answer["EntitlementsAllowed"]] == ["basic", "pro"]
    with pytest.raises(ClientError) as caught:
        checkout(client, "prod-tiers", token="t2", Entitlements=[{"Name": "gold", "Unit": "None"}])
    assert code_of(caught) == "NoEntitlementsAllowedException"
    usage = [{"Name": rules.MARKETPLACE_USAGE_ENTITLEMENT, "Unit": "None"}]
    assert checkout(client, SKU, token="t3", Entitlements=usage)["EntitlementsAllowed"]
    assert seats(emu) == 0  # the usage check holds no seat


def test_a_counted_dimension_checked_out_with_unit_none_is_refused(emu: Emulator) -> None:
    """As a seller observed live: counted units need Unit=Count and a Value."""
    with pytest.raises(ClientError) as caught:
        checkout(lm(emu), Entitlements=[{"Name": "seats", "Unit": "None"}])
    assert code_of(caught) == "NoEntitlementsAllowedException"


def test_drawdown_consumes_for_good(emu: Emulator) -> None:
    """PERPETUAL units never come back: not by check-in (ConflictException), not by time."""
    client = lm(emu)
    wanted = [{"Name": "deployments", "Unit": "Count", "Value": "2"}]
    drawn = checkout(client, "prod-draw", token="d1", CheckoutType="PERPETUAL", Entitlements=wanted)
    with pytest.raises(ClientError) as caught:
        client.check_in_license(LicenseConsumptionToken=drawn["LicenseConsumptionToken"])
    assert code_of(caught) == "ConflictException"
    shift(emu, 30 * 86400)
    with pytest.raises(ClientError) as caught:
        checkout(client, "prod-draw", token="d2", CheckoutType="PERPETUAL", Entitlements=wanted)
    assert code_of(caught) == "NoEntitlementsAllowedException"
    [draw] = [lic for lic in emu.licenses() if lic["sku"] == "prod-draw"]
    assert draw["entitlements"][0]["drawn_down"] == 2


@pytest.mark.parametrize(
    ("sku", "fingerprint"),
    [("prod-unknown", FP), ("prod-selfissued", FP), (SKU, "aws:123456789012:Self/Issued:fp")],
    ids=["no-license", "self-issued-license", "wrong-fingerprint"],
)
def test_no_license_and_a_full_pool_look_the_same(
    emu: Emulator, sku: str, fingerprint: str
) -> None:
    """No license, a self-issued one, another fingerprint: the same error as a pool with no seat."""
    with pytest.raises(ClientError) as caught:
        checkout(lm(emu), sku, KeyFingerprint=fingerprint)
    checkout(lm(emu, "AKIDA"), token="x1")
    checkout(lm(emu, "AKIDB"), token="x2")
    with pytest.raises(ClientError) as full:
        checkout(lm(emu, "AKIDC"), token="x3")
    assert caught.value.response["Error"] == full.value.response["Error"]


def test_the_wrong_region_is_redirected_to_the_license(emu: Emulator) -> None:
    """RedirectException names the home Region; there the checkout succeeds."""
    with pytest.raises(ClientError) as caught:
        checkout(lm(emu), "prod-eu")
    assert code_of(caught) == "RedirectException"
    assert "eu-west-1" in caught.value.response["Location"]  # type: ignore[typeddict-item]
    assert checkout(lm(emu, region="eu-west-1"), "prod-eu")["LicenseConsumptionToken"]


def test_a_client_token_makes_a_checkout_idempotent(emu: Emulator) -> None:
    """The same token and request: the same consumption, one seat; other parameters: refused."""
    client = lm(emu)
    first = checkout(client, token="same")
    again = checkout(client, token="same")
    assert again["LicenseConsumptionToken"] == first["LicenseConsumptionToken"]
    assert seats(emu) == 1
    with pytest.raises(ClientError) as caught:
        checkout(client, token="same", CheckoutType="PERPETUAL")
    assert code_of(caught) == "ValidationException"
    same_account = checkout(lm(emu, "AKIDANOTHERPOD"), token="same")  # tokens are per account
    assert same_account["LicenseConsumptionToken"] == first["LicenseConsumptionToken"]


def test_get_and_list_licenses(emu: Emulator) -> None:
    """GetLicense and ListReceivedLicenses describe the license as the model shapes it."""
    client = lm(emu)
    arn = checkout(client)["LicenseArn"]
    license_ = client.get_license(LicenseArn=arn)["License"]
    assert (license_["ProductSKU"], license_["Status"], license_["HomeRegion"]) == (
        SKU,
        "AVAILABLE",
        "us-east-1",
    )
    assert license_["Issuer"]["KeyFingerprint"] == FP
    assert {
        "Name": "seats",
        "Unit": "Count",
        "MaxCount": 2,
        "Overage": False,
        "AllowCheckIn": True,
    } in license_["Entitlements"]
    assert license_["ConsumptionConfiguration"]["ProvisionalConfiguration"] == {
        "MaxTimeToLiveInMinutes": 60
    }
    found = client.list_received_licenses(Filters=[{"Name": "ProductSKU", "Values": [SKU]}])
    assert [item["LicenseArn"] for item in found["Licenses"]] == [arn]
    page = client.list_received_licenses(MaxResults=1)
    assert len(page["Licenses"]) == 1
    assert page["NextToken"]
    with pytest.raises(ClientError) as caught:
        client.get_license(LicenseArn=arn.replace("l-", "l-0"))
    assert code_of(caught) == "InvalidParameterValueException"


def test_an_expired_license_reads_expired_and_refuses(emu: Emulator) -> None:
    """Past valid_until: GetLicense says EXPIRED, CheckoutLicense refuses."""
    client = lm(emu)
    arn = checkout(client)["LicenseArn"]
    shift(emu, 400 * 86400)
    assert client.get_license(LicenseArn=arn)["License"]["Status"] == "EXPIRED"
    with pytest.raises(ClientError) as caught:
        checkout(client, token="late")
    assert code_of(caught) == "NoEntitlementsAllowedException"


def test_the_anywhere_token_flow_gives_keys_of_the_buyer_account(emu: Emulator) -> None:
    """GetAccessToken (unsigned) then AssumeRoleWithWebIdentity (unsigned): working keys."""
    anonymous = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    lm_anonymous = boto3.session.Session().client(
        "license-manager", region_name="us-east-1", endpoint_url=emu.url, config=anonymous
    )
    access = lm_anonymous.get_access_token(Token="buyer-license-token")["AccessToken"]
    sts = boto3.session.Session().client(
        "sts", region_name="us-east-1", endpoint_url=emu.url, config=anonymous
    )
    answer = sts.assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="pod-1", WebIdentityToken=access, DurationSeconds=900
    )
    keys = answer["Credentials"]
    assert keys["Expiration"] > datetime.now(UTC) + timedelta(minutes=14)
    buyer = boto3.session.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    ).client("license-manager", region_name="us-east-1", endpoint_url=emu.url)
    assert checkout(buyer)["LicenseConsumptionToken"]
    with pytest.raises(ClientError) as caught:
        lm_anonymous.get_access_token(Token="not-a-token")
    assert code_of(caught) == "AuthorizationException"
    with pytest.raises(ClientError) as caught:
        sts.assume_role_with_web_identity(
            RoleArn=ROLE.replace("buyer", "other"), RoleSessionName="pod-1", WebIdentityToken=access
        )
    assert code_of(caught) == "AccessDenied"
    shift(emu, 2 * 3600)
    with pytest.raises(ClientError) as caught:
        sts.assume_role_with_web_identity(
            RoleArn=ROLE, RoleSessionName="pod-1", WebIdentityToken=access
        )
    assert code_of(caught) == "ExpiredTokenException"


def test_rate_limits_and_faults_answer_license_managers_codes(emu: Emulator) -> None:
    """Throttling answers RateLimitExceededException, a server fault ServerInternalException."""
    emu.set_scenario({**SCENARIO, "throttle": {"CheckoutLicense": 1}})
    client = lm(emu)
    checkout(client, token="r1")
    with pytest.raises(ClientError) as caught:
        checkout(client, token="r2")
    assert code_of(caught) == "RateLimitExceededException"
    faulty = {
        **SCENARIO,
        "faults": [{"op": "CheckoutLicense", "kind": "internal_error", "count": 1}],
    }
    emu.set_scenario(faulty)
    with pytest.raises(ClientError) as caught:
        checkout(client, token="r3")
    assert code_of(caught) == "ServerInternalException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert checkout(client, token="r3")["LicenseConsumptionToken"]


def test_a_scenario_swap_keeps_the_seats_of_licenses_still_there(emu: Emulator) -> None:
    """Swapping keeps seats and tokens of surviving licenses; a removed license loses its seats."""
    token = checkout(lm(emu))["LicenseConsumptionToken"]
    emu.set_scenario({"licenses": LICENSES[:1]})
    assert seats(emu) == 1
    assert lm(emu).extend_license_consumption(LicenseConsumptionToken=token)
    emu.set_scenario({"licenses": LICENSES[1:]})
    emu.set_scenario(SCENARIO)
    assert seats(emu) == 0


def test_the_introspection_endpoint_lists_seats_and_tokens(emu: Emulator) -> None:
    """GET /_emulator/licenses: each license, its seats in use and live consumption tokens."""
    token = checkout(lm(emu, "AKIDPOD9"))["LicenseConsumptionToken"]
    with urllib.request.urlopen(emu.url + "/_emulator/licenses", timeout=5) as response:  # noqa: S310
        listing = json.loads(response.read())["licenses"]
    [mine] = [lic for lic in listing if lic["sku"] == SKU]
    assert mine["seats_in_use"] == 1
    assert [(c["token"], c["caller"]) for c in mine["consumptions"]] == [(token, "AKIDPOD9")]
    assert mine["fingerprint"] == FP
    assert mine["status"] == "AVAILABLE"


@pytest.mark.parametrize(
    ("licenses", "words"),
    [
        ([{"sku": "x", "entitlements": [{"name": "s", "unit": "Count"}]}], "max_count"),
        ([{"sku": "x", "entitlements": [{"name": "s", "max_count": 1}]}], "Count only"),
        ([{"sku": "x", "entitlements": []}], "entitlements"),
        ([{"sku": "x", "status": "GONE", "entitlements": [{"name": "s"}]}], "AVAILABLE"),
        ([{"sku": "x", "entitlements": [{"name": "s"}], "tokens": {"t": "role"}}], "role"),
        ([{"sku": "x", "entitlements": [{"name": "s"}], "colour": 1}], "colour"),
        ([{"sku": "x", "entitlements": [{"name": "s"}]}] * 2, "arn"),
    ],
    ids=[
        "count-without-max",
        "max-without-count",
        "no-entitlements",
        "bad-status",
        "bad-role",
        "unknown-key",
        "duplicate",
    ],
)
def test_a_bad_license_names_its_key(licenses: list[dict[str, Any]], words: str) -> None:
    """Scenario errors are one line naming what is wrong."""
    from entitlement_sidecar.emulator import ScenarioError, load_scenario

    with pytest.raises(ScenarioError, match=words):
        load_scenario({"licenses": licenses})


def test_the_emulated_surface_is_the_botocore_models() -> None:
    """Target prefix, signing name, operations and their errors come from the installed models."""
    import botocore.session

    from entitlement_sidecar.emulator import license_model

    session = botocore.session.get_session()
    model = session.get_service_model("license-manager")
    assert model.metadata["targetPrefix"] == license_model.TARGET_PREFIX
    assert model.signing_name == license_model.SIGNING_NAME
    assert model.metadata["jsonVersion"] == "1.1"
    declared = {
        error.name
        for operation in license_model.OPERATIONS
        for error in model.operation_model(operation).error_shapes
    }
    assert declared == license_model.MODELED_ERRORS
    from botocore.loaders import create_loader

    shapes = create_loader().load_service_model("license-manager", "service-2")["shapes"]
    assert shapes[license_model.SERVER_ERROR].get("fault") is True  # answered with HTTP 500
    sts = session.get_service_model("sts")
    assert sts.metadata["protocol"] == "query"
    [operation] = license_model.STS_OPERATIONS
    assert sts.operation_model(operation).auth_type == "none"
