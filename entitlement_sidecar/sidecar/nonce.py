"""RegisterUsage nonces bound to this instance: `<instance-tag>:<random>`, fresh for every call.

The nonce is how a token is tied to one pod or task: AWS signs it into the token, and `check
--verify` accepts a token only if its nonce starts with THIS instance's tag, so a token copied from
another pod does not pass. The tag is the instance id itself when it is short enough (a pod UID is
36 characters) or a SHA-256 of it (a task ARN may be long); the whole nonce stays within AWS's 255.
"""

from __future__ import annotations

import hashlib

from entitlement_sidecar.aws import rules

TYPE_CHECKING = False  # keep `typing` out of the `check --verify` probe; mypy reads this block
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_NONCE = rules.NONCE_MAX
RANDOM_BYTES = 24  # 32 base64url characters
MAX_PLAIN_TAG = MAX_NONCE - 1 - 32


def _random_part() -> str:
    import secrets

    return secrets.token_urlsafe(RANDOM_BYTES)


def instance_tag(instance_id: str) -> str:
    """The instance's part of a nonce: the id itself, or `sha256-<hex>` when too long or unsafe."""
    if 0 < len(instance_id) <= MAX_PLAIN_TAG and instance_id.isprintable():
        return instance_id
    return "sha256-" + hashlib.sha256(instance_id.encode("utf-8", "surrogatepass")).hexdigest()


def nonce_prefix(instance_id: str) -> str:
    """Every nonce of this instance starts with this string."""
    return instance_tag(instance_id) + ":"


def make_nonce(instance_id: str, random_part: Callable[[], str] = _random_part) -> str:
    """A fresh nonce for one RegisterUsage call from this instance."""
    nonce = nonce_prefix(instance_id) + random_part()
    if len(nonce) > MAX_NONCE:
        raise ValueError(f"nonce would be {len(nonce)} characters; at most {MAX_NONCE}")
    return nonce


def has_prefix(nonce: str, prefix: str) -> bool:
    """True when `nonce` is exactly `prefix` + a non-empty random part (which has no ':').

    The random part is base64url, so it never holds a ':'; requiring that makes the binding
    exact: a nonce made for instance `a:b` is not taken as bound to instance `a`.
    """
    if not nonce.startswith(prefix):
        return False
    rest = nonce[len(prefix) :]
    return bool(rest) and ":" not in rest


def is_bound_to(nonce: str, instance_id: str) -> bool:
    """True when `nonce` was made for `instance_id` (and has a non-empty random part)."""
    return has_prefix(nonce, nonce_prefix(instance_id))
