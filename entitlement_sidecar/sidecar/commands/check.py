"""`entitlement-sidecar check [--verify] [--entitlement NAME]`: exit 0 iff this instance may serve.

Plain `check` runs every few seconds in every pod, so it reads status.json with `json` and `os`
only: entitled, the current document version, and (where the environment says who we are) issued
to THIS instance. `--verify` also re-verifies `token.jwt` against the key ring, the configured
product code and key version, and checks that the token's nonce is bound to this instance, so a
hand-written or copied status does not pass. In License Manager mode (`ENTITLEMENT_PRODUCT_SKU`)
the pod may serve while the license holds, and after a loss as the seller's policy says (the same
rule as `/readyz`); `--verify` checks the SKU and, when the image carries a SignedToken key, the
token; `--entitlement NAME` (repeatable) also requires NAME in `entitlements.json`, so an app can
gate a feature. Never crashes on garbage: exit 1 with one line.
Exit codes: 0 entitled, 1 not entitled (or unreadable), 2 invalid configuration.
"""

from __future__ import annotations

import os
import sys

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError, config_exit
from entitlement_sidecar.sidecar import envlite, policy, status
from entitlement_sidecar.sidecar.defaults import EXIT_DENIED

TYPE_CHECKING = False  # `typing` costs an exec probe ~10 ms; mypy still reads this block
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from entitlement_sidecar.sidecar.policy import Policy

USAGE = """usage: entitlement-sidecar check [--verify] [--entitlement NAME]...

Exit 0 iff ENTITLEMENT_STATUS_DIR/status.json says this instance is entitled (License Manager
mode: may serve, as /readyz says).
--verify            also verify token.jwt (PS256, key ring, product code, nonce bound to this
                    instance; License Manager: the SKU, and the SignedToken when a key is set)
--entitlement NAME  License Manager: also require NAME in entitlements.json (a tier or units)
exit codes: 0 entitled, 1 not entitled, 2 invalid configuration"""


class NotEntitled(Exception):
    """Why the check fails (one line)."""


def plain_check(doc: Mapping[str, Any] | None, environ: Mapping[str, str]) -> None:
    """Raise `NotEntitled` unless `doc` is an entitled document issued to this instance."""
    if doc is None:
        raise NotEntitled("status.json is missing, unreadable or not a version-1 document")
    if not status.is_entitled(dict(doc)):
        reason = doc.get("reason")
        raise NotEntitled(f"state is {doc.get('state')}" + (f" ({reason})" if reason else ""))
    check_instance(doc, environ)


def check_instance(doc: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Raise `NotEntitled` when the environment says who we are and `doc` is someone else's."""
    me, _needs_ecs = envlite.local_instance_id(environ)
    if me is not None and doc.get("instance") != me:
        raise NotEntitled("status.json was issued to another instance")


class Expectations:
    """What `--verify` checks a token against, read (and validated) before status.json."""

    __slots__ = ("key", "product_code", "version")

    def __init__(self, environ: Mapping[str, str], image_policy: Policy) -> None:
        from entitlement_sidecar.sidecar import keyring
        from entitlement_sidecar.sidecar.trust import UNTRUSTED_PRODUCT_CODE, untrusted

        self.product_code = envlite.product_code(environ)
        self.version = envlite.public_key_version(environ)
        self.key = keyring.load_key(envlite.public_keys(environ), self.version, image_policy)
        why = untrusted(self.product_code, envlite.trusted_product_codes(environ))
        if why is not None:
            raise NotEntitled(f"{UNTRUSTED_PRODUCT_CODE}: {why}")


def verify_token(
    doc: Mapping[str, Any], token: str | None, environ: Mapping[str, str], expected: Expectations
) -> None:
    """Raise `NotEntitled` unless `token` verifies for this product, key version and instance."""
    from entitlement_sidecar.errors import TransientError
    from entitlement_sidecar.sidecar import instance
    from entitlement_sidecar.sidecar.nonce import nonce_prefix
    from entitlement_sidecar.sidecar.signature import Expected, TokenRejected, verify

    if token is None:
        raise NotEntitled("token.jwt is missing or unreadable")
    try:
        me = instance.resolve(environ)
    except TransientError as error:
        raise NotEntitled(f"cannot tell which instance this is: {error}") from None
    prefix = nonce_prefix(me.id)
    try:
        claims = verify(
            token, expected.key, Expected(expected.product_code, expected.version, None, prefix)
        )
    except TokenRejected as rejected:
        raise NotEntitled(f"token rejected: {rejected}") from None
    if doc.get("nonce") != claims.nonce:
        raise NotEntitled("status.json does not describe token.jwt (nonce differs)")


def parse(argv: list[str]) -> tuple[bool, list[str]] | int:
    """(--verify, the --entitlement names), or the exit code for help and usage errors."""
    verify, names = False, []
    args = iter(argv)
    for arg in args:
        if arg in {"-h", "--help"}:
            print(USAGE)
            return EXIT_OK
        if arg == "--verify":
            verify = True
        elif arg == "--entitlement" or arg.startswith("--entitlement="):
            name = arg.partition("=")[2] or next(args, "")
            if not name:
                print("entitlement-sidecar check: --entitlement needs a NAME", file=sys.stderr)
                return EXIT_CONFIG
            names.append(name)
        else:
            print(f"entitlement-sidecar check: unknown argument {arg!r}", file=sys.stderr)
            return EXIT_CONFIG
    return verify, names


def main(argv: list[str]) -> int:
    parsed = parse(argv)
    if isinstance(parsed, int):
        return parsed
    verify, names = parsed
    try:
        image_policy = policy.load()
        environ = image_policy.apply(os.environ)
        status_dir = envlite.status_dir(environ)
        contract = envlite.license_mode(environ)
        expected = Expectations(environ, image_policy) if verify and not contract else None
        doc = status.read(status_dir)
        if contract:
            from entitlement_sidecar.sidecar.license.probe import license_check

            said = license_check(
                doc, status_dir, environ, verify=verify, names=names, image_policy=image_policy
            )
        elif names:
            return config_exit(
                "--entitlement needs License Manager mode (ENTITLEMENT_PRODUCT_SKU)",
                "entitlement_sidecar.check",
            )
        else:
            plain_check(doc, environ)
            if expected is not None and doc is not None:
                verify_token(doc, status.read_token(status_dir), environ, expected)
            said = "entitled" + (" (token verified)" if verify else "")
    except NotEntitled as why:
        print(f"not entitled: {why}", file=sys.stderr)
        return EXIT_DENIED
    except ConfigurationError as error:
        return config_exit(error, "entitlement_sidecar.check")
    print(said)
    return EXIT_OK
