"""AWS Marketplace's patterns and limits, each defined once.

The sidecar and operator settings, the Metering client wrapper and the emulator take every AWS
rule from here, and a test compares the chart's template guards and `values.schema.json` with
these strings, so a rule is fixed in one place (a trailing newline slipping past `$` once took
ten file edits). Sources: the botocore service model `meteringmarketplace/2016-01-14` and the
seller guide, as summarised in the project's AWS facts sheet; where we are stricter than the model
the line says why.

Patterns carry no anchors. Python matches them with `re.fullmatch` (`$` alone would accept a
trailing newline); `anchored()` gives the `^...$` form for JSON Schema, Helm's `regexMatch` (Go)
and pydantic's Rust engine, where `$` is the end of the text. Import-free on purpose: the lean
processes may read it.
"""

# ProductCode: the model allows 0-255 of these characters; an empty code is never valid for us.
PRODUCT_CODE_MAX = 255
PRODUCT_CODE = r"[-a-zA-Z0-9/=:_.@]{1,255}"
PRODUCT_CODE_HINT = "1-255 characters of letters, digits and -/=:_.@"
# The same character set spelt out, for the lean processes that may not import `re`.
PRODUCT_CODE_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/=:_.@"

# UsageDimension: 1-255 characters, fixed when the product is published; at most 24 per product.
DIMENSION_MAX = 255
DIMENSIONS_PER_PRODUCT = 24

# Allocation tags. The model's pattern `^[a-zA-Z0-9+ -=._:\/@]+$` holds the range space..'='
# (so also !"#$%&'()*,;<); we send only the narrow set the seller guide names, valid under both.
TAG_KEY_MAX = 100
TAG_VALUE_MAX = 256
TAG_KEY = r"[a-zA-Z0-9 +\-=._:/@]{1,100}"
TAG_VALUE = r"[a-zA-Z0-9 +\-=._:/@]{1,256}"
TAG_KEYS_PER_REQUEST = 5  # distinct tag keys in one MeterUsage request
TAGS_PER_ALLOCATION = 5
ALLOCATIONS_PER_REQUEST = 2500
# Request body limit: documented for BatchMeterUsage (< 1 MB); MeterUsage is held to the same.
REQUEST_BODY_MAX = 1024 * 1024

# UsageQuantityAsDecimal / AllocatedUsageQuantityAsDecimal.
QUANTITY_DECIMAL = r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?"
QUANTITY_DECIMALS = 6

# RegisterUsage and MeterUsage request limits.
NONCE_MAX = 255
CLIENT_TOKEN_MAX = 64
PUBLIC_KEY_VERSION_MAX = 2**31 - 1  # model: integer >= 1 (a Java int on the wire)

# Time windows.
METER_WINDOW_SECONDS = 6 * 3600  # MeterUsage timestamps: at most 6 hours in the past
BATCH_WINDOW_SECONDS = 24 * 3600  # BatchMeterUsage records: 24 hours per the model
REGISTER_WINDOW_SECONDS = 6 * 3600  # a pod not registered within 6 hours loses guarantees
REGISTER_RETRY_SECONDS = 30 * 60  # AWS: retry transient RegisterUsage failures up to 30 min

# Request quotas per buyer account and Region (calls per second).
QUOTAS_PER_SECOND = {"RegisterUsage": 5.0, "MeterUsage": 10.0, "BatchMeterUsage": 10.0}

# Names AWS gives its Regions and accounts.
REGION = r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}"
ACCOUNT_ID = r"[0-9]{12}"
# An access key id as SigV4's Credential carries it (IAM: alphanumeric, 16-128 characters; the
# emulator accepts shorter ones so tests can name callers AKIDPOD1, AKIDPOD2, ...).
ACCESS_KEY_ID = r"[A-Za-z0-9]{1,128}"

# ResolveCustomer's Metadata.AgreementId (botocore model shape `AgreementId`: 1-64 characters).
AGREEMENT_ID = r"[A-Za-z0-9_/-]{1,64}"


def anchored(pattern: str) -> str:
    """`pattern` for engines that search (JSON Schema, Go, Rust): `^pattern$`."""
    return f"^{pattern}$"
