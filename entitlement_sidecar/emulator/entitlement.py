"""RegisterUsage (container entitlement, signed token) and ResolveCustomer (SaaS tokens).

RegisterUsage follows the service's "first call decides" rule: once a caller (one pod or task)
registered a product, later calls from that caller succeed even if the scenario now says the
product is not entitled or fails with a product error, as AWS documents.
"""

from __future__ import annotations

from typing import Any

from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.scenario import Product
from entitlement_sidecar.emulator.signing import UNLISTED, claims
from entitlement_sidecar.emulator.state import Call, World, iso
from entitlement_sidecar.emulator.validation import validate_input


def product_for(world: World, call: Call, code: str, region_error: str) -> Product:
    """The scenario's product for `code`, after the region check (errors as the service names)."""
    if call.caller.region != world.scenario.region:
        raise ApiError(
            region_error,
            f"The request was signed for region {call.caller.region!r}, "
            f"this endpoint serves {world.scenario.region!r}",
        )
    product = world.scenario.products.get(code)
    if product is None:
        raise ApiError("InvalidProductCodeException", f"Unknown product code {code!r}")
    return product


def product_error(product: Product, code: str) -> None:
    """Raise the scenario's `error` for this product, if it has one."""
    if product.error is not None:
        raise ApiError(product.error, f"Product {code!r} answers {product.error} (scenario)")


def register_usage(world: World, call: Call) -> dict[str, Any]:
    """Answer RegisterUsage with a PS256 token, or the error the scenario calls for."""
    body = validate_input("RegisterUsage", call.body)
    code: str = body["ProductCode"]
    version: int = body["PublicKeyVersion"]
    nonce: str | None = body.get("Nonce")
    scenario = world.scenario
    product = product_for(world, call, code, "InvalidRegionException")
    if version not in scenario.key_versions:
        raise ApiError(
            "InvalidPublicKeyVersionException",
            f"Public key version {version} is not valid for product {code!r}",
        )
    with world.state.lock:
        first = (call.caller.access_key_id, code) not in world.state.registered
    if first:
        product_error(product, code)
    if first and not product.entitled:
        raise ApiError(
            "CustomerNotEntitledException",
            f"The customer is not subscribed to product {code!r}",
        )
    iat = int(call.now.timestamp())
    key = UNLISTED if product.sign_with_unlisted_key else version
    token = world.keys.sign(key, claims(scenario.claims_case, code, version, nonce, iat))
    expired = version in scenario.expired_key_versions
    with world.state.lock:
        world.state.registered.add((call.caller.access_key_id, code))
        world.state.registrations.append(
            {
                "caller": call.caller.access_key_id,
                "account": call.account,
                "product_code": code,
                "public_key_version": version,
                "nonce": nonce,
                "timestamp": iso(call.now),
                "key_expired": expired,
                "signed_with_unlisted_key": product.sign_with_unlisted_key,
                "signature": token,
            }
        )
    answer: dict[str, Any] = {"Signature": token}
    if expired:
        answer["PublicKeyRotationTimestamp"] = int(world.rotation_at.timestamp())
    return answer


def resolve_customer(world: World, call: Call) -> dict[str, Any]:
    """Redeem a scenario registration token for the customer's identifiers.

    As the model documents, a product integrated for concurrent agreements (new SaaS
    integrations) gets no `CustomerIdentifier`, only the account id and LicenseArn; every
    answer carries `Metadata.AgreementId`.
    """
    body = validate_input("ResolveCustomer", call.body)
    token: str = body["RegistrationToken"]
    scenario = world.scenario
    customer = scenario.customers.get(token)
    if customer is None:
        raise ApiError("InvalidTokenException", "Invalid registration token")
    if customer.expired:
        raise ApiError("ExpiredTokenException", "The registration token has expired")
    answer: dict[str, Any] = {
        "CustomerAWSAccountId": customer.customer_aws_account_id,
        "ProductCode": customer.product,
        "LicenseArn": scenario.license_of(token),
        "Metadata": {"AgreementId": scenario.agreement_of(token)},
    }
    if scenario.products[customer.product].saas_integration == "legacy":
        answer["CustomerIdentifier"] = scenario.identifier_of(token)
    return answer
