"""What License Manager (and the STS call of its Anywhere flow) declare, for the emulator.

Plain constants: the `AWSLicenseManager` JSON 1.1 target prefix and signing name, the operations
the emulator serves, the error codes the botocore model declares for them, and STS's one action.
Shared by the scenario model (fault codes, throttle keys), the API registry and the tests that
compare them with the installed botocore models.
"""

from __future__ import annotations

TARGET_PREFIX = "AWSLicenseManager"
SIGNING_NAME = "license-manager"
ERROR_NAMESPACE = "com.amazonaws.licensemanager"
OPERATIONS = (
    "CheckoutLicense",
    "CheckInLicense",
    "ExtendLicenseConsumption",
    "GetLicense",
    "GetLicenseUsage",
    "ListReceivedLicenses",
    "GetAccessToken",
)
UNSIGNED = frozenset({"GetAccessToken"})  # called before the caller has any credentials
THROTTLE_ERROR = "RateLimitExceededException"
SERVER_ERROR = "ServerInternalException"  # the model's only fault (HTTP 500)

# Every error code the botocore model declares for OPERATIONS (a test compares them).
MODELED_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "AuthorizationException",
        "ConflictException",
        "InvalidParameterValueException",
        "NoEntitlementsAllowedException",
        "RateLimitExceededException",
        "RedirectException",
        "ResourceLimitExceededException",
        "ResourceNotFoundException",
        "ServerInternalException",
        "UnsupportedDigitalSignatureMethodException",
        "ValidationException",
    }
)

STS_OPERATIONS = ("AssumeRoleWithWebIdentity",)
