"""License Manager's operations as the emulator answers them (AWS JSON 1.1, `AWSLicenseManager`).

CheckoutLicense looks for the caller account's license with the requested SKU and issuer key
fingerprint. Another Region's license answers `RedirectException` (its `Location` names the home
Region's endpoint); no usable license, or not enough free units, answers the same
`NoEntitlementsAllowedException` (AWS does not tell the two apart). Unit-`None` entitlements are
granted when the license has them; `Count` ones only all together, from the free units. A
provisional checkout holds its units until CheckInLicense or its time-to-live (extended by
ExtendLicenseConsumption); a perpetual one draws them down for good. A ClientToken replayed by the
same account with the same request returns the original checkout. GetLicense,
ListReceivedLicenses and GetAccessToken complete the set the sidecar uses.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator.licenses import ENABLED, Placed, place
from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.seats import Consumption, LicenseBook, iso
from entitlement_sidecar.emulator.signing import generate_key, public_pem, sign_jws
from entitlement_sidecar.emulator.state import Call, World
from entitlement_sidecar.emulator.validation import validate_input

SERVICE = "license-manager"
NO_ENTITLEMENTS = "No entitlements are allowed for the requested license checkout"
_ISSUER_KEY: list[rsa.RSAPrivateKey] = []  # one License Manager signing key per process


def issuer_key() -> rsa.RSAPrivateKey:
    """The key SignedTokens are signed with (its public half: `license-issuer.pem`)."""
    if not _ISSUER_KEY:
        _ISSUER_KEY.append(generate_key())
    return _ISSUER_KEY[0]


ISSUER_KEY_FILE = "license-issuer.pem"


def write_issuer_key(directory: Path) -> None:
    """Publish the SignedToken key's public half as `license-issuer.pem` (SPKI PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{ISSUER_KEY_FILE}.tmp"
    temporary.write_bytes(public_pem(issuer_key()))
    os.replace(temporary, directory / ISSUER_KEY_FILE)


def catalog(world: World) -> dict[str, Placed]:
    """The scenario's licenses by ARN."""
    scenario = world.scenario
    return place(scenario.licenses, scenario.account_id, scenario.region)


def _book(world: World) -> LicenseBook:
    return world.state.licenses


def _usable(placed: Placed, book: LicenseBook, now: datetime) -> bool:
    begin, end = book.window(placed)
    return placed.spec.status == "AVAILABLE" and begin <= now < end


def _grant(
    placed: Placed, book: LicenseBook, wanted: list[dict[str, Any]], now: datetime
) -> list[tuple[str, str, str | None]]:
    """What a checkout of `wanted` gets from this license (empty: nothing is allowed)."""
    allowed: list[tuple[str, str, str | None]] = []
    for item in wanted:
        name, unit, value = item["Name"], item["Unit"], item.get("Value")
        have = placed.spec.entitlement(name)
        if unit == "Count":
            units = int(value) if isinstance(value, str) and value.isdigit() else 0
            free = (have.max_count or 0) - book.in_use(placed.arn, name, now) if have else 0
            if have is None or have.unit != "Count" or units < 1:
                return []  # partial checkouts of counted units are not supported
            if units > free and not have.overage:
                return []
            allowed.append((name, "Count", str(units)))
        elif unit == "None" and have is not None and have.unit == "None":
            allowed.append((name, "None", ENABLED))
        # Any other unit (or a `None` checkout of a counted dimension) is simply not allowed.
    return allowed


def checkout_license(world: World, call: Call) -> dict[str, Any]:
    """CheckoutLicense: a consumption of the caller's license, or the error AWS would answer."""
    validate_input("CheckoutLicense", call.body, service=SERVICE)
    body = call.body
    wanted: list[dict[str, Any]] = body["Entitlements"]
    if not wanted:
        raise ApiError("ValidationException", "Entitlements must name at least one entitlement")
    request = (
        body["ProductSKU"],
        body["CheckoutType"],
        body["KeyFingerprint"],
        tuple(sorted((e["Name"], e["Unit"], e.get("Value") or "") for e in wanted)),
        body.get("NodeId"),
    )
    licenses, now, book = catalog(world), call.now, _book(world)
    with world.state.lock:
        replay = _replay(book, call, request)
        if replay is not None:
            return replay
        mine = [
            p
            for p in licenses.values()
            if p.account == call.account
            and p.spec.sku == body["ProductSKU"]
            and p.spec.fingerprint == body["KeyFingerprint"]
        ]
        here = [p for p in mine if p.region == call.caller.region]
        if mine and not here:
            home = mine[0].region
            raise ApiError(
                "RedirectException",
                f"The license is managed in {home}; send the request there",
                extra={"Location": f"https://license-manager.{home}.amazonaws.com"},
            )
        usable = sorted((p for p in here if _usable(p, book, now)), key=lambda p: book.window(p)[0])
        chosen = usable[-1] if usable else None  # the most recent license wins
        allowed = _grant(chosen, book, wanted, now) if chosen else []
        if chosen is None or not allowed:
            raise ApiError("NoEntitlementsAllowedException", NO_ENTITLEMENTS)
        provisional = body["CheckoutType"] == "PROVISIONAL"
        ttl = timedelta(minutes=chosen.spec.provisional_ttl_minutes)
        consumption = Consumption(
            token=secrets.token_hex(24),
            arn=chosen.arn,
            account=call.account,
            caller=call.caller.access_key_id,
            client_token=body["ClientToken"],
            checkout_type=body["CheckoutType"],
            entitlements=tuple(allowed),
            issued_at=now,
            expiration=now + ttl if provisional else book.window(chosen)[1],
            node_id=body.get("NodeId"),
        )
        book.add(consumption)
        book.client_tokens[(call.account, body["ClientToken"])] = (request, consumption.token)
    return _answer(consumption, chosen)


def _replay(book: LicenseBook, call: Call, request: tuple[Any, ...]) -> dict[str, Any] | None:
    """The original answer to a ClientToken this account used before (same request only)."""
    seen = book.client_tokens.get((call.account, call.body["ClientToken"]))
    if seen is None:
        return None
    if seen[0] != request:
        raise ApiError(
            "ValidationException",
            "The ClientToken was already used with different request parameters",
        )
    consumption = book.consumptions.get(seen[1])
    return None if consumption is None else _answer(consumption, None)


def _answer(consumption: Consumption, placed: Placed | None) -> dict[str, Any]:
    allowed = [
        {"Name": name, "Unit": unit, **({"Value": value} if value else {})}
        for name, unit, value in consumption.entitlements
    ]
    answer: dict[str, Any] = {
        "CheckoutType": consumption.checkout_type,
        "LicenseConsumptionToken": consumption.token,
        "EntitlementsAllowed": allowed,
        "IssuedAt": iso(consumption.issued_at),
        "Expiration": iso(consumption.expiration),
        "LicenseArn": consumption.arn,
    }
    if consumption.node_id:
        answer["NodeId"] = consumption.node_id
    if placed is None or placed.spec.signed_token:
        claims = {
            "entitlementsAllowed": [
                {"name": n, "unit": u, **({"value": v} if v else {})}
                for n, u, v in consumption.entitlements
            ],
            "checkoutType": consumption.checkout_type,
            "expiration": answer["Expiration"],
            "issuedAt": answer["IssuedAt"],
            "licenseArn": consumption.arn,
            "licenseConsumptionToken": consumption.token,
            "nodeId": consumption.node_id,
        }
        answer["SignedToken"] = sign_jws(issuer_key(), claims)
    return answer


def _held(world: World, call: Call, token: str) -> Consumption:
    """The caller account's live consumption `token`, or ResourceNotFoundException."""
    consumption = _book(world).consumptions.get(token)
    if consumption is None or consumption.account != call.account or not consumption.live(call.now):
        raise ApiError("ResourceNotFoundException", "License consumption not found or expired")
    return consumption


def check_in_license(world: World, call: Call) -> dict[str, Any]:
    """CheckInLicense: return a provisional checkout's units to the pool."""
    validate_input("CheckInLicense", call.body, service=SERVICE)
    with world.state.lock:
        consumption = _held(world, call, call.body["LicenseConsumptionToken"])
        if consumption.checkout_type == "PERPETUAL":
            raise ApiError("ConflictException", "A perpetual checkout cannot be checked in")
        consumption.checked_in = True
    return {}


def extend_license_consumption(world: World, call: Call) -> dict[str, Any]:
    """ExtendLicenseConsumption: another time-to-live for a live provisional checkout."""
    validate_input("ExtendLicenseConsumption", call.body, service=SERVICE)
    licenses = catalog(world)
    with world.state.lock:
        consumption = _held(world, call, call.body["LicenseConsumptionToken"])
        placed = licenses.get(consumption.arn)
        if placed is None or not _usable(placed, _book(world), call.now):
            raise ApiError("ResourceNotFoundException", "The license is no longer available")
        if consumption.checkout_type == "PROVISIONAL" and not call.body.get("DryRun"):
            ttl = timedelta(minutes=placed.spec.provisional_ttl_minutes)
            consumption.expiration = call.now + ttl
        expiration = consumption.expiration
    return {"LicenseConsumptionToken": consumption.token, "Expiration": iso(expiration)}


def _license(placed: Placed, book: LicenseBook, now: datetime) -> dict[str, Any]:
    """A License / GrantedLicense document."""
    spec = placed.spec
    begin, end = book.window(placed)
    status = "EXPIRED" if spec.status == "AVAILABLE" and now >= end else spec.status
    entitlements = []
    for item in spec.all_entitlements():
        row: dict[str, Any] = {"Name": item.name, "Unit": item.unit}
        if item.unit == "Count":
            row.update(MaxCount=item.max_count, Overage=item.overage)
        else:
            row["Value"] = ENABLED
        row["AllowCheckIn"] = item.allow_check_in
        entitlements.append(row)
    issuer = _issuer(placed)
    return {
        "LicenseArn": placed.arn,
        "LicenseName": spec.name or f"{spec.sku} license",
        "ProductName": spec.name or spec.sku,
        "ProductSKU": spec.sku,
        "Issuer": {"Name": issuer, "KeyFingerprint": spec.fingerprint},
        "HomeRegion": placed.region,
        "Status": status,
        "Validity": {"Begin": iso(begin), "End": iso(end)},
        "Beneficiary": placed.account,
        "Entitlements": entitlements,
        "ConsumptionConfiguration": {
            "RenewType": "None",
            "ProvisionalConfiguration": {
                "MaxTimeToLiveInMinutes": math.ceil(spec.provisional_ttl_minutes)
            },
        },
        "CreateTime": iso(begin),
        "Version": "1",
    }


def _callers_license(world: World, call: Call) -> Placed:
    """The license `LicenseArn` names, if it is the caller account's (GetLicense and
    GetLicenseUsage answer alike for an unknown ARN and for another account's)."""
    placed = catalog(world).get(call.body["LicenseArn"])
    if placed is None:
        raise ApiError("InvalidParameterValueException", "License not found")
    if placed.account != call.account:
        raise ApiError("AccessDeniedException", "The license belongs to another account")
    return placed


def get_license(world: World, call: Call) -> dict[str, Any]:
    """GetLicense: one license of the caller's account."""
    validate_input("GetLicense", call.body, service=SERVICE)
    placed = _callers_license(world, call)
    with world.state.lock:
        return {"License": _license(placed, _book(world), call.now)}


def get_license_usage(world: World, call: Call) -> dict[str, Any]:
    """GetLicenseUsage: units of each counted entitlement in use now (seats held, drawn down)."""
    validate_input("GetLicenseUsage", call.body, service=SERVICE)
    placed = _callers_license(world, call)
    usages = []
    with world.state.lock:
        book = _book(world)
        for item in placed.spec.all_entitlements():
            row: dict[str, Any] = {
                "Name": item.name,
                "ConsumedValue": str(book.in_use(placed.arn, item.name, call.now)),
                "Unit": item.unit,
            }
            if item.unit == "Count":
                row["MaxCount"] = str(item.max_count)
            usages.append(row)
    return {"LicenseUsage": {"EntitlementUsages": usages}}


def _issuer(placed: Placed) -> str:
    return "AWS/Marketplace" if placed.spec.from_marketplace else f"Issuer of {placed.account}"


_FILTERS: dict[str, Callable[[Placed], str]] = {
    "ProductSKU": lambda p: p.spec.sku,
    "Status": lambda p: p.spec.status,
    "Fingerprint": lambda p: p.spec.fingerprint,
    "IssuerName": _issuer,
    "Beneficiary": lambda p: p.account,
}


def list_received_licenses(world: World, call: Call) -> dict[str, Any]:
    """ListReceivedLicenses: the caller account's licenses in this Region, filtered and paged."""
    validate_input("ListReceivedLicenses", call.body, service=SERVICE)
    body = call.body
    found = [
        p
        for p in catalog(world).values()
        if p.account == call.account and p.region == call.caller.region
    ]
    if body.get("LicenseArns"):
        found = [p for p in found if p.arn in body["LicenseArns"]]
    for item in body.get("Filters") or ():
        read = _FILTERS.get(item.get("Name", ""))
        values = item.get("Values") or []
        if read is None or len(values) != 1:
            raise ApiError("InvalidParameterValueException", f"Unsupported filter {item!r}"[:200])
        found = [p for p in found if read(p) == values[0]]
    start = int(body["NextToken"]) if str(body.get("NextToken", "")).isdigit() else 0
    size = body.get("MaxResults") or 100
    page = found[start : start + size]
    with world.state.lock:
        licenses = [
            {**_license(p, _book(world), call.now), "ReceivedMetadata": _received()} for p in page
        ]
    answer: dict[str, Any] = {"Licenses": licenses}
    if start + size < len(found):
        answer["NextToken"] = str(start + size)
    return answer


def _received() -> dict[str, Any]:
    return {
        "ReceivedStatus": "ACTIVE",
        "AllowedOperations": ["CheckoutLicense", "CheckInLicense", "ExtendConsumptionLicense"],
        "GrantType": "BuyerGrant",
    }


def get_access_token(world: World, call: Call) -> dict[str, Any]:
    """GetAccessToken: an hour-long access token for a buyer's license token (signed or not)."""
    validate_input("GetAccessToken", call.body, service=SERVICE)
    token = call.body["Token"]
    owner = next((p for p in catalog(world).values() if token in p.spec.tokens), None)
    if owner is None:
        raise ApiError("AuthorizationException", "The license token is not valid")
    access = "lmat-" + secrets.token_urlsafe(48)
    expires = call.now + timedelta(seconds=rules.ACCESS_TOKEN_SECONDS)
    with world.state.lock:
        _book(world).access_tokens[access] = (owner.arn, owner.spec.tokens[token], expires)
    return {"AccessToken": access}


HANDLERS = {
    "CheckoutLicense": checkout_license,
    "CheckInLicense": check_in_license,
    "ExtendLicenseConsumption": extend_license_consumption,
    "GetLicense": get_license,
    "GetLicenseUsage": get_license_usage,
    "ListReceivedLicenses": list_received_licenses,
    "GetAccessToken": get_access_token,
}
