"""One table of operations and the answers every real client must see from the emulator.

Each `Case` is an AWS call as data (service, operation, JSON-able parameters, who signs it) and
the outcome: the output members that must be present, or the error code and HTTP status. The
same rows run through every client driver (`drivers.py`: boto3 in-process, aiobotocore and the
AWS CLI in their own virtualenvs), in order, against a fresh emulator with `SCENARIO`, whose
`callers` make the emulator verify each client's SigV4 signer too. More services (License
Manager) add rows with their own `service`; nothing else changes.

Timestamps are written `{"$now": SECONDS}` (relative to the start of the driver's run, so a
repeated case repeats its timestamp) and each driver turns them into what its client takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCESS_KEY_ID = "AKIDCOMPAT"
SECRET = "compat-secret"
REGION = "us-east-1"

LICENSE_ARN = "arn:aws:license-manager::123456789012:license:l-compat0000000000000000000000000"
SKU = "prod-contract"
FINGERPRINT = "aws:294406891311:AWS/Marketplace:issuer-fingerprint"

SCENARIO: dict[str, Any] = {
    "callers": {ACCESS_KEY_ID: {"secret": SECRET}},
    "licenses": [
        {
            "sku": SKU,
            "arn": LICENSE_ARN,
            "entitlements": [{"name": "seats", "unit": "Count", "max_count": 100}, {"name": "pro"}],
            "tokens": {"compat-license-token": "arn:aws:iam::123456789012:role/compat"},
        },
        {"sku": "prod-eu", "home_region": "eu-west-1", "entitlements": [{"name": "pro"}]},
    ],
    "throttle": None,
    "products": {
        "prod-paid": {"dimensions": ["users", "gb"]},
        "prod-lapsed": {"entitled": False},
        "prod-onprem": {"error": "PlatformNotSupportedException"},
        "prod-busy": {"error": "ThrottlingException"},
        "prod-broken": {"error": "InternalServiceErrorException"},
        "prod-saas": {"dimensions": ["users"]},
    },
    "customers": {
        "token-abc": {
            "customer_aws_account_id": "123456789012",
            "product": "prod-saas",
            "customer_identifier": "cust-abc",
        },
        "token-old": {
            "customer_aws_account_id": "210987654321",
            "product": "prod-saas",
            "expired": True,
        },
    },
}


@dataclass(frozen=True)
class Case:
    """One call and what it must answer (an error code and status, or these output members)."""

    id: str
    operation: str
    params: dict[str, Any]
    error: str | None = None
    status: int = 200
    expect: tuple[str, ...] = ()
    service: str = "meteringmarketplace"
    access_key_id: str = ACCESS_KEY_ID
    secret: str = SECRET


@dataclass(frozen=True)
class Result:
    """What a client reported: the error code (None on success), status, class, output members."""

    code: str | None
    status: int | None  # None when the client does not expose it (the AWS CLI)
    exception: str | None = None
    members: tuple[str, ...] = ()
    client_model_lacks: str | None = None  # the client's own model refused the parameters
    detail: str = field(default="", compare=False)


def now(seconds: float = 0) -> dict[str, float]:
    """A timestamp `seconds` from the moment of the call."""
    return {"$now": seconds}


RECENT = now(-300)
ALLOCATED = [
    {"AllocatedUsageQuantityAsDecimal": "1.5", "Tags": [{"Key": "team", "Value": "a"}]},
    {"AllocatedUsageQuantityAsDecimal": "1", "Tags": [{"Key": "team", "Value": "b"}]},
]
METERED = {"ProductCode": "prod-paid", "Timestamp": RECENT, "UsageDimension": "users"}
SAAS_RECORD = {"Timestamp": RECENT, "Dimension": "users", "Quantity": 2}
SEAT = [{"Name": "seats", "Unit": "Count", "Value": "1"}]
CHECKOUT = {
    "ProductSKU": SKU,
    "CheckoutType": "PROVISIONAL",
    "KeyFingerprint": FINGERPRINT,
    "Entitlements": SEAT,
}
CHECKED_OUT = (
    "LicenseConsumptionToken",
    "EntitlementsAllowed",
    "Expiration",
    "LicenseArn",
    "SignedToken",
)
LM = "license-manager"

CASES: tuple[Case, ...] = (
    Case("register", "RegisterUsage", {"ProductCode": "prod-paid", "PublicKeyVersion": 1, "Nonce": "n-1"}, expect=("Signature",)),
    Case("register-not-entitled", "RegisterUsage", {"ProductCode": "prod-lapsed", "PublicKeyVersion": 1}, "CustomerNotEntitledException", 400),
    Case("register-platform", "RegisterUsage", {"ProductCode": "prod-onprem", "PublicKeyVersion": 1}, "PlatformNotSupportedException", 400),
    Case("register-key-version", "RegisterUsage", {"ProductCode": "prod-paid", "PublicKeyVersion": 9}, "InvalidPublicKeyVersionException", 400),
    Case("register-unknown-product", "RegisterUsage", {"ProductCode": "prod-nope", "PublicKeyVersion": 1}, "InvalidProductCodeException", 400),
    Case("register-throttled", "RegisterUsage", {"ProductCode": "prod-busy", "PublicKeyVersion": 1}, "ThrottlingException", 400),
    Case("register-internal-error", "RegisterUsage", {"ProductCode": "prod-broken", "PublicKeyVersion": 1}, "InternalServiceErrorException", 500),
    Case("meter", "MeterUsage", {**METERED, "UsageQuantity": 3, "ClientToken": "compat-1"}, expect=("MeteringRecordId",)),
    Case("meter-identical-repeat", "MeterUsage", {**METERED, "UsageQuantity": 3, "ClientToken": "compat-1"}, expect=("MeteringRecordId",)),
    Case("meter-duplicate-hour", "MeterUsage", {**METERED, "UsageQuantity": 4}, "DuplicateRequestException", 400),
    Case("meter-token-conflict", "MeterUsage", {**METERED, "UsageQuantity": 5, "ClientToken": "compat-1"}, "IdempotencyConflictException", 400),
    Case("meter-unknown-dimension", "MeterUsage", {**METERED, "UsageDimension": "cpu"}, "InvalidUsageDimensionException", 400),
    Case("meter-too-old", "MeterUsage", {**METERED, "Timestamp": now(-7 * 3600)}, "TimestampOutOfBoundsException", 400),
    Case("meter-decimal-allocations", "MeterUsage", {**METERED, "UsageDimension": "gb", "UsageQuantityAsDecimal": "2.5", "UsageAllocations": ALLOCATED}, expect=("MeteringRecordId",)),
    Case("meter-allocations-off-by-one", "MeterUsage", {**METERED, "UsageDimension": "gb", "UsageQuantity": 2, "UsageAllocations": [{"AllocatedUsageQuantity": 1}]}, "InvalidUsageAllocationsException", 400),
    Case("batch-by-identifier", "BatchMeterUsage", {"ProductCode": "prod-saas", "UsageRecords": [{**SAAS_RECORD, "CustomerIdentifier": "cust-abc"}]}, expect=("Results", "UnprocessedRecords")),
    Case("batch-same-buyer-by-account", "BatchMeterUsage", {"ProductCode": "prod-saas", "UsageRecords": [{**SAAS_RECORD, "CustomerAWSAccountId": "123456789012"}]}, expect=("Results", "UnprocessedRecords")),
    Case("batch-unknown-product", "BatchMeterUsage", {"ProductCode": "prod-nope", "UsageRecords": [{**SAAS_RECORD, "CustomerAWSAccountId": "123456789012"}]}, "InvalidProductCodeException", 400),
    Case("resolve", "ResolveCustomer", {"RegistrationToken": "token-abc"}, expect=("CustomerAWSAccountId", "LicenseArn", "ProductCode")),
    Case("resolve-expired", "ResolveCustomer", {"RegistrationToken": "token-old"}, "ExpiredTokenException", 400),
    Case("resolve-invalid", "ResolveCustomer", {"RegistrationToken": "token-nope"}, "InvalidTokenException", 400),
    Case("wrong-secret", "RegisterUsage", {"ProductCode": "prod-paid", "PublicKeyVersion": 1}, "InvalidSignatureException", 403, secret="not-the-secret"),
    Case("unknown-access-key", "RegisterUsage", {"ProductCode": "prod-paid", "PublicKeyVersion": 1}, "UnrecognizedClientException", 403, access_key_id="AKIDSTRANGER"),
    Case("lm-checkout-seat", "CheckoutLicense", {**CHECKOUT, "ClientToken": "compat-seat-1"}, expect=CHECKED_OUT, service=LM),
    Case("lm-checkout-replayed", "CheckoutLicense", {**CHECKOUT, "ClientToken": "compat-seat-1"}, expect=CHECKED_OUT, service=LM),
    Case("lm-checkout-tier", "CheckoutLicense", {**CHECKOUT, "Entitlements": [{"Name": "pro", "Unit": "None"}], "ClientToken": "compat-tier"}, expect=("EntitlementsAllowed",), service=LM),
    Case("lm-checkout-drawdown", "CheckoutLicense", {**CHECKOUT, "CheckoutType": "PERPETUAL", "ClientToken": "compat-draw"}, expect=CHECKED_OUT, service=LM),
    Case("lm-no-license", "CheckoutLicense", {**CHECKOUT, "ProductSKU": "prod-none", "ClientToken": "compat-none"}, "NoEntitlementsAllowedException", 400, service=LM),
    Case("lm-self-issued-fingerprint", "CheckoutLicense", {**CHECKOUT, "KeyFingerprint": "aws:123456789012:me:fp", "ClientToken": "compat-fp"}, "NoEntitlementsAllowedException", 400, service=LM),
    Case("lm-counted-as-none", "CheckoutLicense", {**CHECKOUT, "Entitlements": [{"Name": "seats", "Unit": "None"}], "ClientToken": "compat-none-unit"}, "NoEntitlementsAllowedException", 400, service=LM),
    Case("lm-redirect", "CheckoutLicense", {**CHECKOUT, "ProductSKU": "prod-eu", "ClientToken": "compat-eu"}, "RedirectException", 400, service=LM),
    Case("lm-token-reused-otherwise", "CheckoutLicense", {**CHECKOUT, "CheckoutType": "PERPETUAL", "ClientToken": "compat-seat-1"}, "ValidationException", 400, service=LM),
    Case("lm-check-in-unknown", "CheckInLicense", {"LicenseConsumptionToken": "nope"}, "ResourceNotFoundException", 400, service=LM),
    Case("lm-extend-unknown", "ExtendLicenseConsumption", {"LicenseConsumptionToken": "nope"}, "ResourceNotFoundException", 400, service=LM),
    Case("lm-get-license", "GetLicense", {"LicenseArn": LICENSE_ARN}, expect=("License",), service=LM),
    Case("lm-get-license-unknown", "GetLicense", {"LicenseArn": LICENSE_ARN[:-1] + "1"}, "InvalidParameterValueException", 400, service=LM),
    Case("lm-list-received", "ListReceivedLicenses", {"Filters": [{"Name": "ProductSKU", "Values": [SKU]}]}, expect=("Licenses",), service=LM),
    Case("lm-access-token", "GetAccessToken", {"Token": "compat-license-token"}, expect=("AccessToken",), service=LM),
    Case("lm-access-token-invalid", "GetAccessToken", {"Token": "not-a-license-token"}, "AuthorizationException", 400, service=LM),
)  # fmt: skip
