"""The image policy: what the seller's image decides at build time, out of reach of the pod spec.

A buyer controls the pod spec (environment, volumes, chart values) but not the image. So the
settings that make enforcement mean something are baked into the image when it is built
(`entitlement-sidecar policy bake`, a RUN step of the seller's Dockerfile) and written to
`policy_file()`, inside the installation, where no environment variable can point elsewhere:

- `fixed`: `ENTITLEMENT_*` settings the image sets for good (release: signature verification on,
  the key ring's path, the trusted product codes; any other setting a seller chooses to fix). A
  container environment that gives one of them another value is refused, exit 2 naming it.
- `pinned_keys`: the SHA-256 fingerprint of each `<version>.pem` the ring held at build time. A key
  file that is not one of them (a ConfigMap mounted over the ring) is refused, exit 2.
- `pinned_token_key`: License Manager mode, when the seller baked `ENTITLEMENT_LICENSE_TOKEN_KEY`:
  the fingerprint of that SignedToken key, pinned the same way.

Profiles: `release` fixes verification and the ring and pins the ring's keys, and fixes the
License Manager decisions (`LICENSE_DECISIONS`: the SKU that switches the mode on, what it checks
out, the lock/report policy, grace, heartbeat and the SignedToken key) empty unless the seller
bakes them, so the pod spec cannot switch an hourly image to License Manager mode; `permissive`
fixes and pins nothing it is not told to (the demo, the tests, smoke builds select it). An
installation without a policy file is `release` with no key pinned: it verifies nothing and says
how to bake one. Lean (json, os, sys): `run`, `check` and the registration child all read it.
"""

from __future__ import annotations

import json
import os
import sys

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar.defaults import DEFAULT_PUBLIC_KEYS, ENV_PREFIX

TYPE_CHECKING = False  # keep `typing` out of the exec probe; mypy still reads this block
if TYPE_CHECKING:
    from collections.abc import Mapping

RELEASE = "release"
PERMISSIVE = "permissive"
PROFILES = (RELEASE, PERMISSIVE)
POLICY_VERSION = 1
MAX_POLICY_BYTES = 65536
VERIFY_SIGNATURE = ENV_PREFIX + "VERIFY_SIGNATURE"
PUBLIC_KEYS = ENV_PREFIX + "PUBLIC_KEYS"
TRUSTED_PRODUCT_CODES = ENV_PREFIX + "TRUSTED_PRODUCT_CODES"
PRODUCT_SKU = ENV_PREFIX + "PRODUCT_SKU"
LICENSE_TOKEN_KEY = ENV_PREFIX + "LICENSE_TOKEN_KEY"
# License Manager settings only the seller's image decides (release: empty unless baked).
LICENSE_DECISIONS = (
    PRODUCT_SKU,
    ENV_PREFIX + "TRUSTED_PRODUCT_SKUS",
    ENV_PREFIX + "LICENSE_ENTITLEMENTS",
    ENV_PREFIX + "LICENSE_CHECKOUT",
    ENV_PREFIX + "LICENSE_POLICY",
    ENV_PREFIX + "LICENSE_GRACE_SECONDS",
    ENV_PREFIX + "LICENSE_HEARTBEAT_SECONDS",
    LICENSE_TOKEN_KEY,
)
SHOW = "entitlement-sidecar policy show"
BAKE = "entitlement-sidecar policy bake"


def policy_file() -> str:
    """Where this installation's policy lives: inside it (the image's virtualenv), not in env."""
    return os.path.join(sys.prefix, "share", "entitlement-sidecar", "policy.json")


class Policy(Record):
    """One image's decisions: its profile, the settings it fixes, the keys it pins."""

    __slots__ = ("fixed", "path", "pinned_keys", "pinned_token_key", "profile")

    def __init__(
        self,
        profile: str,
        fixed: dict[str, str],
        pinned_keys: dict[int, str] | None,
        path: str = "",
        pinned_token_key: str | None = None,
    ) -> None:
        self.profile = profile
        self.fixed = fixed
        self.pinned_keys = pinned_keys  # None: any key the ring holds (permissive)
        self.path = path
        self.pinned_token_key = pinned_token_key  # the baked SignedToken key's fingerprint

    def to_json(self) -> dict[str, object]:
        pins = self.pinned_keys
        shown = None if pins is None else {str(v): f for v, f in sorted(pins.items())}
        return {
            "version": POLICY_VERSION,
            "profile": self.profile,
            "fixed": dict(self.fixed),
            "pinned_keys": shown,
            "pinned_token_key": self.pinned_token_key,
        }

    def apply(self, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` with the fixed settings in force; `ConfigurationError` if it disagrees."""
        effective = dict(environ)
        for name, value in self.fixed.items():
            given = environ.get(name)
            if given is not None and given.strip() and not _same(given, value):
                raise ConfigurationError(
                    f"{name}={given.strip()!r}: this image's {self.profile} policy fixes it to "
                    f"{value!r} at build time; remove it from the container's environment "
                    f"(`{SHOW}`)",
                    variable=name,
                )
            effective[name] = value
        return effective

    def require_pin(self, version: int) -> None:
        """`ConfigurationError` when keys are pinned and none is pinned for `version`."""
        if self.pinned_keys is not None and version not in self.pinned_keys:
            known = ", ".join(str(v) for v in sorted(self.pinned_keys)) or "none"
            raise ConfigurationError(
                f"{PUBLIC_KEYS}: this image pins no key for public key version {version} "
                f"(pinned versions: {known}); the seller bakes its key ring into the image "
                f"with `{BAKE}`",
                variable=PUBLIC_KEYS,
            )

    def pinned(self, version: int, fingerprint: str, path: str) -> None:
        """`ConfigurationError` unless the key at `path` is the one pinned for `version`."""
        if self.pinned_keys is None:
            return
        self.require_pin(version)
        expected = self.pinned_keys[version]
        if expected != fingerprint:
            raise ConfigurationError(
                f"{PUBLIC_KEYS}: {path} (sha256:{fingerprint[:16]}) is not the key this image "
                f"pins for version {version} (sha256:{expected[:16]}); a key ring mounted over "
                "the image's is refused",
                variable=PUBLIC_KEYS,
            )

    def pinned_token(self, fingerprint: str, path: str) -> None:
        """`ConfigurationError` unless the SignedToken key at `path` is the one baked in.

        Pinned only when the release image fixed `ENTITLEMENT_LICENSE_TOKEN_KEY` (a permissive
        image, or one that baked no key, pins nothing: the key is then the pod spec's own)."""
        if self.pinned_keys is None or not self.fixed.get(LICENSE_TOKEN_KEY):
            return
        if self.pinned_token_key != fingerprint:
            expected = (self.pinned_token_key or "none")[:16]
            raise ConfigurationError(
                f"{LICENSE_TOKEN_KEY}: {path} (sha256:{fingerprint[:16]}) is not the SignedToken "
                f"key this image pins (sha256:{expected}); a key mounted over the image's is "
                "refused",
                variable=LICENSE_TOKEN_KEY,
            )


def _same(given: str, fixed: str) -> bool:
    return given.strip().casefold() == fixed.strip().casefold()


def release(
    pinned_keys: dict[int, str],
    fixed: Mapping[str, str] | None = None,
    pinned_token_key: str | None = None,
) -> Policy:
    """The release policy: verification on, the default ring's path, these keys pinned, the
    License Manager decisions empty unless `fixed` bakes them."""
    settings = {
        VERIFY_SIGNATURE: "true",
        PUBLIC_KEYS: DEFAULT_PUBLIC_KEYS,
        TRUSTED_PRODUCT_CODES: "",
        **dict.fromkeys(LICENSE_DECISIONS, ""),
    }
    settings.update(fixed or {})
    return Policy(RELEASE, settings, dict(pinned_keys), pinned_token_key=pinned_token_key)


UNBAKED = release({})  # an installation nobody baked a policy into


def load(path: str | None = None) -> Policy:
    """The policy at `path` (default `policy_file()`); the unbaked release policy when absent."""
    path = policy_file() if path is None else path
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        return UNBAKED
    except OSError as exc:
        raise _broken(path, exc.strerror or str(exc)) from None
    try:
        document = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_POLICY_BYTES else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        document = None
    policy = parse(document) if isinstance(document, dict) else None
    if policy is None:
        raise _broken(path, "not a version-1 policy document")
    return Policy(policy.profile, policy.fixed, policy.pinned_keys, path, policy.pinned_token_key)


def parse(document: dict[str, object]) -> Policy | None:
    """The policy a JSON document describes, or None when it is not a valid one."""
    profile, fixed, pins = (
        document.get("profile"),
        document.get("fixed"),
        document.get("pinned_keys"),
    )
    token_key = document.get("pinned_token_key")
    if (
        document.get("version") != POLICY_VERSION
        or profile not in PROFILES
        or not (token_key is None or isinstance(token_key, str))
    ):
        return None
    if not isinstance(fixed, dict) or not all(
        isinstance(k, str) and k.startswith(ENV_PREFIX) and isinstance(v, str)
        for k, v in fixed.items()
    ):
        return None
    if pins is None:
        return None if profile == RELEASE else Policy(str(profile), dict(fixed), None)
    if not isinstance(pins, dict):
        return None
    pinned: dict[int, str] = {}
    for version, fingerprint in pins.items():
        if not (isinstance(version, str) and version.isdigit() and isinstance(fingerprint, str)):
            return None
        pinned[int(version)] = fingerprint
    return Policy(str(profile), dict(fixed), pinned, pinned_token_key=token_key)


def _broken(path: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"image policy {path} is unusable ({why}); rebuild the image with `{BAKE}`",
        variable="image policy",
    )
