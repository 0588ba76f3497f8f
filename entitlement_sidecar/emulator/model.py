"""What the Metering service declares: target prefix, signing name, operations, modeled errors.

Plain constants shared by the scenario model (which error codes a product may answer), the API
registry and the tests that compare them with the installed botocore model.
"""

from __future__ import annotations

TARGET_PREFIX = "AWSMPMeteringService"
SIGNING_NAME = "aws-marketplace"
ERROR_NAMESPACE = "com.amazonaws.marketplacemetering"  # the x-amzn-ErrorType suffix's namespace
OPERATIONS = ("RegisterUsage", "MeterUsage", "BatchMeterUsage", "ResolveCustomer")

# Every error code the botocore model declares for this service (tests compare this with the model).
MODELED_ERRORS = frozenset(
    {
        "CustomerNotEntitledException",
        "DisabledApiException",
        "DuplicateRequestException",
        "ExpiredTokenException",
        "IdempotencyConflictException",
        "InternalServiceErrorException",
        "InvalidCustomerIdentifierException",
        "InvalidEndpointRegionException",
        "InvalidLicenseException",
        "InvalidProductCodeException",
        "InvalidPublicKeyVersionException",
        "InvalidRegionException",
        "InvalidTagException",
        "InvalidTokenException",
        "InvalidUsageAllocationsException",
        "InvalidUsageDimensionException",
        "PlatformNotSupportedException",
        "ThrottlingException",
        "TimestampOutOfBoundsException",
    }
)
