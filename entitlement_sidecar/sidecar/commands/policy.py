"""`entitlement-sidecar policy bake | show`: write the image policy at build time, or print it.

`bake` runs in the seller's Dockerfile (a RUN step, as root, after the key ring is copied in): it
pins the SHA-256 of every `<version>.pem` in the ring (and of the SignedToken key a contract image
bakes as `ENTITLEMENT_LICENSE_TOKEN_KEY`), fixes the settings the profile fixes plus
every `--set NAME=VALUE` (build args go in this way), checks that those values are valid
settings, and writes `policy.policy_file()` inside the installation. `show` prints the policy in
force and where it lives. Exit codes: 0 done, 2 invalid usage or a value/key that would not load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from entitlement_sidecar.errors import EXIT_OK, ConfigurationError, config_exit
from entitlement_sidecar.sidecar import policy as image
from entitlement_sidecar.sidecar.defaults import DEFAULT_PUBLIC_KEYS, ENV_PREFIX

PLACEHOLDER_PRODUCT = "placeholder-product-code"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entitlement-sidecar policy",
        description="Bake the image policy (at image build time) or show the one in force.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    bake = sub.add_parser("bake", help="write this installation's policy (image build time)")
    bake.add_argument("--profile", choices=image.PROFILES, required=True)
    bake.add_argument(
        "--keys",
        default=DEFAULT_PUBLIC_KEYS,
        help="release: the key ring to fix and pin (default %(default)s)",
    )
    bake.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="also fix this ENTITLEMENT_* setting (repeatable; an empty VALUE fixes it empty)",
    )
    bake.add_argument("--output", help=argparse.SUPPRESS)  # tests bake into a temporary path
    sub.add_parser("show", help="print the policy in force and where it lives")
    return parser


def _fixed(pairs: list[str], profile: str) -> dict[str, str]:
    from entitlement_sidecar.sidecar.settings import KNOWN_VARIABLES, unknown_variables

    fixed: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not name.startswith(ENV_PREFIX):
            raise ConfigurationError(f"--set {pair!r}: expected ENTITLEMENT_NAME=VALUE")
        if name not in KNOWN_VARIABLES:
            closest = unknown_variables({name: value})[0][1]
            raise ConfigurationError(f"--set {name}: not a setting (did you mean {closest}?)")
        fixed[name] = value.strip()
    if profile == image.RELEASE:
        if fixed.get(image.VERIFY_SIGNATURE, "true").lower() != "true":
            raise ConfigurationError(
                f"--set {image.VERIFY_SIGNATURE}: the release profile always verifies signatures"
            )
        if image.PUBLIC_KEYS in fixed:
            raise ConfigurationError(f"--set {image.PUBLIC_KEYS}: use --keys to fix the key ring")
    return fixed


def _pins(directory: str) -> dict[int, str]:
    """The fingerprint of each `<version>.pem` in `directory`, every one a usable key."""
    from entitlement_sidecar.sidecar.keyring import load_key

    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigurationError(f"--keys {directory}: {exc.strerror or exc}") from None
    versions = sorted(
        int(name[:-4]) for name in names if name.endswith(".pem") and name[:-4].isdigit()
    )
    return {v: load_key(directory, v, None).fingerprint for v in versions if v > 0}


def _token_pin(fixed: dict[str, str]) -> str | None:
    """The fingerprint of the SignedToken key a contract image bakes (None: it bakes none)."""
    from entitlement_sidecar.sidecar.keyring import load_key_file

    path = fixed.get(image.LICENSE_TOKEN_KEY)
    if not path:
        return None
    return load_key_file(path, image.LICENSE_TOKEN_KEY, "the SignedToken").fingerprint


def bake(args: argparse.Namespace) -> int:
    from entitlement_sidecar.atomic import write_atomic
    from entitlement_sidecar.sidecar.settings import SidecarSettings

    fixed = _fixed(args.settings, args.profile)
    if args.profile == image.RELEASE:
        baked = image.release(_pins(args.keys), fixed, _token_pin(fixed))
        baked.fixed[image.PUBLIC_KEYS] = args.keys
    else:
        baked = image.Policy(image.PERMISSIVE, fixed, None)
    probe = {ENV_PREFIX + "PRODUCT_CODE": PLACEHOLDER_PRODUCT}
    SidecarSettings.load(probe, baked)  # every fixed value must be one the sidecar accepts
    target = args.output or image.policy_file()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    write_atomic(Path(target), (json.dumps(baked.to_json(), indent=2) + "\n").encode())
    print(f"baked the {baked.profile} policy into {target}")
    for name, value in sorted(baked.fixed.items()):
        print(f"  fixed  {name}={value}")
    for version, fingerprint in sorted((baked.pinned_keys or {}).items()):
        print(f"  pinned public key version {version}: sha256:{fingerprint}")
    if baked.pinned_token_key:
        print(f"  pinned SignedToken key: sha256:{baked.pinned_token_key}")
    contract = bool(baked.fixed.get(image.PRODUCT_SKU))
    if baked.profile == image.RELEASE and not baked.pinned_keys and not contract:
        print(f"warning: no key in {args.keys}: this image verifies nothing", file=sys.stderr)
    if (
        baked.profile == image.RELEASE
        and not contract
        and not baked.fixed.get(image.TRUSTED_PRODUCT_CODES)
    ):
        print(
            f"warning: no {image.TRUSTED_PRODUCT_CODES}: any product code configured at run "
            "time is registered (bake your paid product codes)",
            file=sys.stderr,
        )
    return EXIT_OK


def show() -> int:
    path = image.policy_file()
    current = image.load(path)
    document = {"path": path, "baked": os.path.exists(path), **current.to_json()}
    print(json.dumps(document, indent=2))
    return EXIT_OK


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return bake(args) if args.action == "bake" else show()
    except ConfigurationError as error:
        return config_exit(error)
    except OSError as error:
        return config_exit(f"cannot write the policy ({error.strerror or error}: {error.filename})")
