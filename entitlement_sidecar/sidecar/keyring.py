"""The key ring: AWS Marketplace public keys baked into the seller's image, one file per version.

`<dir>/<version>.pem` holds the SPKI PEM that AWS issued for that `PublicKeyVersion`. The key is
chosen ONLY by the version we ask RegisterUsage for, never by anything inside a token. A key that
is missing, unparsable, too small, or one of the published demo keys (whose private half anyone
has) is a configuration error, reported before any AWS call. Standard library only.
"""

from __future__ import annotations

import os

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.defaults import ENV_PREFIX
from entitlement_sidecar.sidecar.rsakey import InvalidKey, RsaPublicKey, is_demo_key, parse_spki_pem

VARIABLE = ENV_PREFIX + "PUBLIC_KEYS"
MAX_PEM_BYTES = 65536


def key_path(directory: str, version: int) -> str:
    return os.path.join(directory, f"{version}.pem")


def load_key(directory: str, version: int) -> RsaPublicKey:
    """The key for `version` from the ring at `directory`; `ConfigurationError` if unusable."""
    path = key_path(directory, version)
    try:
        with open(path, "rb") as handle:
            pem = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"{VARIABLE}: no readable key for public key version {version} at {path} "
            f"({exc.strerror or exc})",
            variable=VARIABLE,
        ) from None
    if len(pem) > MAX_PEM_BYTES:
        raise ConfigurationError(
            f"{VARIABLE}: {path} is too large for a PEM key", variable=VARIABLE
        )
    try:
        key = parse_spki_pem(pem)
    except InvalidKey as exc:
        raise ConfigurationError(f"{VARIABLE}: {path}: {exc}", variable=VARIABLE) from None
    if is_demo_key(key):
        raise ConfigurationError(
            f"{VARIABLE}: {path} is a published demo key (its private half is public); "
            "put the key AWS Marketplace issued for your product there",
            variable=VARIABLE,
        )
    return key
