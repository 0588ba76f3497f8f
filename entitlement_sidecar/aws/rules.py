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


# --- AWS License Manager (botocore `license-manager/2018-08-01`, the seller guide) ---
# Every license AWS Marketplace issues carries this issuer key fingerprint; CheckoutLicense is
# always sent with it, so a license the buyer issued to themselves (another fingerprint) never
# entitles. Pinned here, never taken from configuration.
MARKETPLACE_ISSUER_FINGERPRINT = "aws:294406891311:AWS/Marketplace:issuer-fingerprint"
# Non-consuming entitlement present on active Marketplace agreements (sellers' code, not the
# guide): a seat-free "still subscribed?" check.
MARKETPLACE_USAGE_ENTITLEMENT = "AWS::Marketplace::Usage"
# ProductSKU is a plain String in the model; the Marketplace product ID is letters, digits and
# dashes. We accept a little more, never whitespace, commas or quotes (stricter than the model).
PRODUCT_SKU = r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}"
PRODUCT_SKU_HINT = "1-255 characters of letters, digits and ._:/@- (the Marketplace product ID)"
# Entitlement names are the contract dimensions' API names (e.g. `AWS::Marketplace::Usage`); our
# comma/`=` syntax needs them free of `,`, `=` and whitespace.
ENTITLEMENT_NAME = r"[A-Za-z0-9_.:/@+-]{1,255}"
# CheckoutLicense ClientToken: the model says 1-2048 of `\S`; an older API reference said 64 of
# `[a-zA-Z0-9]`. We send 64 hex characters, valid under both.
LICENSE_CLIENT_TOKEN_MAX = 2048
LICENSE_CLIENT_TOKEN = r"\S{1,2048}"  # noqa: S105 - a pattern, not a secret
LICENSE_ARN = r"arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}"  # noqa: E501
LICENSE_STATUSES = (
    "AVAILABLE",
    "PENDING_AVAILABLE",
    "DEACTIVATED",
    "SUSPENDED",
    "EXPIRED",
    "PENDING_DELETE",
    "DELETED",
)
CHECKOUT_TYPES = ("PROVISIONAL", "PERPETUAL")
# ISO8601DateTime in responses (IssuedAt, Expiration, Validity): the model's pattern.
ISO8601_DATETIME = r"(-?(?:[1-9][0-9]*)?[0-9]{4})-(1[0-2]|0[1-9])-(3[0-1]|0[1-9]|[1-2][0-9])T(2[0-3]|[0-1][0-9]):([0-5][0-9]):([0-5][0-9])(\.[0-9]+)?(Z|[+-](?:2[ 0-3]|[0-1][0-9]):[0-5][0-9])+"  # noqa: E501
PROVISIONAL_TTL_MINUTES = 60  # a Marketplace license's floating seat returns after 60 minutes
LICENSE_CHECK_SECONDS = 15 * 60  # AWS: check the license every 15 minutes on EKS and ECS
ANYWHERE_CHECK_SECONDS = 24 * 3600  # AWS: check once a day on Containers Anywhere
GET_ACCESS_TOKEN_MAX = 4096  # GetAccessToken Token: 1-4096 of `\S`
ACCESS_TOKEN_SECONDS = 3600  # GetAccessToken: "Access tokens are valid for one hour"
# STS AssumeRoleWithWebIdentity (the model): session name and duration.
ROLE_SESSION_NAME = r"[\w+=,.@-]{2,64}"  # Java's \w: match with re.ASCII
ROLE_SESSION_CHARS = ROLE_SESSION_NAME[1:-7]  # the class's characters, to build its complement
ROLE_DURATION_MIN = 900
ROLE_DURATION_MAX = 43200
ROLE_ARN = r"arn:aws[a-zA-Z-]*:iam::(?P<account>[0-9]{12}):role/[\w+=,.@/-]{1,512}"


def anchored(pattern: str) -> str:
    """`pattern` for engines that search (JSON Schema, Go, Rust): `^pattern$`."""
    return f"^{pattern}$"
