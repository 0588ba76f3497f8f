"""The key ring: AWS Marketplace public keys baked into the seller's image, one file per version.

`<dir>/<version>.pem` holds the SPKI PEM that AWS issued for that `PublicKeyVersion`. The key is
chosen ONLY by the version we ask RegisterUsage for, never by anything inside a token. A key that
is missing, not a regular file (a FIFO would hang the reader), unparsable, too small or too large,
one of the published demo keys (whose private half anyone has), or not the key the image policy
pinned for that version is a configuration error, reported before any AWS call. Standard library
only.
"""

from __future__ import annotations

import os

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.defaults import ENV_PREFIX
from entitlement_sidecar.sidecar.rsakey import InvalidKey, RsaPublicKey, is_demo_key, parse_spki_pem
from entitlement_sidecar.sidecar.safefile import NotReadable, read_regular

TYPE_CHECKING = False  # keep `typing` out of the `check --verify` probe; mypy reads this block
if TYPE_CHECKING:
    from entitlement_sidecar.sidecar.policy import Policy

VARIABLE = ENV_PREFIX + "PUBLIC_KEYS"
MAX_PEM_BYTES = 65536


def key_path(directory: str, version: int) -> str:
    return os.path.join(directory, f"{version}.pem")


def load_key(directory: str, version: int, image_policy: Policy | None) -> RsaPublicKey:
    """The key for `version` from the ring at `directory`; `ConfigurationError` if unusable.

    `image_policy` pins the keys the image was built with (None: no pinning, for `bake` itself).
    """
    path = key_path(directory, version)
    if image_policy is not None:
        image_policy.require_pin(version)
    key = load_key_file(path, VARIABLE, f"public key version {version}")
    if image_policy is not None:
        image_policy.pinned(version, key.fingerprint, path)
    return key


def load_key_file(path: str, variable: str, what: str = "the key") -> RsaPublicKey:
    """The SPKI PEM RSA key at `path`; `ConfigurationError` naming `variable` if unusable."""
    try:
        pem = read_regular(path, MAX_PEM_BYTES)
    except NotReadable as why:
        raise ConfigurationError(
            f"{variable}: no readable key for {what} at {path} ({why})", variable=variable
        ) from None
    try:
        key = parse_spki_pem(pem)
    except InvalidKey as exc:
        raise ConfigurationError(f"{variable}: {path}: {exc}", variable=variable) from None
    if is_demo_key(key):
        raise ConfigurationError(
            f"{variable}: {path} is a published demo key (its private half is public); "
            "put the key AWS Marketplace issued for your product there",
            variable=variable,
        )
    return key
