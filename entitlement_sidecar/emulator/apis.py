"""The AWS JSON 1.1 services this emulator serves on its one port, keyed by `X-Amz-Target` prefix.

A `JsonApi` says how to recognise a service (target prefix, SigV4 signing name), how its errors
are named on the wire (the x-amzn-ErrorType namespace) and which handler answers each operation.
The request pipeline in `service.py` is the same for every entry: authenticate (SigV4 when the
scenario has `callers`), route by target, check the credential scope, faults, throttling, body,
handler. License Manager is the second entry (`license_manager.py`); STS's query protocol has its
own route in `service.py` (`sts.py`). See the extension points in docs/design.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from entitlement_sidecar.emulator import license_manager, license_model, model
from entitlement_sidecar.emulator.batch import batch_meter_usage
from entitlement_sidecar.emulator.entitlement import register_usage, resolve_customer
from entitlement_sidecar.emulator.metering import meter_usage
from entitlement_sidecar.emulator.state import Call, World

Handler = Callable[[World, Call], dict[str, Any]]


@dataclass(frozen=True)
class JsonApi:
    """One AWS JSON 1.1 service: how requests reach it and which handler answers each operation."""

    target_prefix: str
    signing_name: str
    error_namespace: str
    handlers: Mapping[str, Handler]
    # Operations with no modeled region error: a credential scoped to another region is refused
    # at the signature (403 InvalidSignatureException), as a real regional endpoint does.
    region_checked: frozenset[str] = field(default_factory=frozenset)
    # How this service names throttling and a server fault (faults and quotas answer these).
    throttle_error: str = "ThrottlingException"
    server_error: str = "InternalServiceErrorException"
    # Operations a caller without credentials may send (no Authorization header at all).
    unsigned: frozenset[str] = field(default_factory=frozenset)


METERING = JsonApi(
    target_prefix=model.TARGET_PREFIX,
    signing_name=model.SIGNING_NAME,
    error_namespace=model.ERROR_NAMESPACE,
    handlers={
        "RegisterUsage": register_usage,
        "MeterUsage": meter_usage,
        "BatchMeterUsage": batch_meter_usage,
        "ResolveCustomer": resolve_customer,
    },
    region_checked=frozenset({"BatchMeterUsage", "ResolveCustomer"}),
)

LICENSE_MANAGER = JsonApi(
    target_prefix=license_model.TARGET_PREFIX,
    signing_name=license_model.SIGNING_NAME,
    error_namespace=license_model.ERROR_NAMESPACE,
    handlers=license_manager.HANDLERS,
    throttle_error=license_model.THROTTLE_ERROR,
    server_error=license_model.SERVER_ERROR,
    unsigned=license_model.UNSIGNED,
)

JSON_APIS: Mapping[str, JsonApi] = {api.target_prefix: api for api in (METERING, LICENSE_MANAGER)}
