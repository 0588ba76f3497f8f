"""The startup sequence: the composition root of one registration (`register`, and `run`'s child).

Settings are already validated. In order: who we are, region, endpoint and AWS identity
(`caller.identify`), the key, the refusals (an earlier denial of this pod, an untrusted code);
then RegisterUsage with a fresh nonce per attempt, transient failures retried until
`STARTUP_TIMEOUT` (throttling spread over the herd's quota window, `retry.HerdBackoff`); then PS256
verification of the token against our request; finally the status hand-off. Every ending is a
documented exit code with a consistent status, Ctrl-C and unexpected errors included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from entitlement_sidecar.aws import rules
from entitlement_sidecar.errors import (
    BudgetExhausted,
    MarketplaceError,
    PermanentError,
)
from entitlement_sidecar.retry import HerdBackoff, call_with_retry
from entitlement_sidecar.sidecar import instance, keyring, status
from entitlement_sidecar.sidecar.caller import identify
from entitlement_sidecar.sidecar.defaults import DENIED
from entitlement_sidecar.sidecar.nonce import make_nonce
from entitlement_sidecar.sidecar.outcome import REAL_CLOCK, Attempts, Clock, Report, settle
from entitlement_sidecar.sidecar.rsakey import RsaPublicKey
from entitlement_sidecar.sidecar.settings import SidecarSettings, env_name
from entitlement_sidecar.sidecar.signature import Expected, TokenRejected, verify
from entitlement_sidecar.sidecar.trust import UNTRUSTED_PRODUCT_CODE, untrusted

if TYPE_CHECKING:
    from entitlement_sidecar.aws.metering import Registration

log = logging.getLogger(__name__)

SUCCESS = "Success"


def _make_client(region: str) -> Any:
    from entitlement_sidecar.aws.metering import make_client

    return make_client(region)


def register(
    settings: SidecarSettings,
    environ: Mapping[str, str],
    *,
    make_client: Callable[[str], Any] = _make_client,
    clock: Clock = REAL_CLOCK,
    started: float | None = None,
) -> int:
    """Register this instance once and write the status hand-off; return the exit code.

    prepare -> refusal? -> RegisterUsage (unavailable | denied) -> verify (denied) -> entitled.
    `started`: when the process started (`clock.monotonic()`; default: now), the origin of the
    herd's quota window and of `duration_seconds`.
    """
    status_dir = str(settings.status_dir)
    report = Report(
        status_dir,
        {
            "product_code": settings.metering_product_code,
            "public_key_version": settings.public_key_version,
        },
        clock,
        started,
    )
    prior = status.read(status_dir)
    return settle(
        report,
        lambda: _register(
            settings, environ, make_client=make_client, clock=clock, report=report, prior=prior
        ),
    )


def _register(
    settings: SidecarSettings,
    environ: Mapping[str, str],
    *,
    make_client: Callable[[str], Any],
    clock: Clock,
    report: Report,
    prior: Mapping[str, Any] | None,
) -> int:
    report.publish_pending()
    me, region, key = _prepare(settings, environ, clock)
    client = make_client(region)
    report.identify(me.id, me.kind)

    refusal = _refusal(prior, me.id, settings, report.attempts)
    if refusal is not None:
        return report.denied("not registering", *refusal)

    try:
        answer = _register_with_retry(settings, client, me, report, clock)
    except BudgetExhausted as exhausted:
        return report.unavailable(exhausted)
    except PermanentError as error:
        return report.denied("RegisterUsage refused", error.code, error.message or error.code)
    rotation = _rotation(settings, answer)

    try:
        verified = _verify(settings, key, answer.signature, report.attempts.nonce or "")
    except TokenRejected as rejected:
        return report.denied(
            "RegisterUsage token rejected",
            rejected.code,
            rejected.message,
            public_key_rotation_at=rotation,
        )
    return report.entitled(answer.signature, verified=verified, rotation=rotation)


def _rotation(settings: SidecarSettings, answer: Registration) -> str | None:
    """The PublicKeyRotationTimestamp AWS reported (ISO 8601), warned about; None when absent."""
    if answer.rotation_at is None:
        return None
    rotation = answer.rotation_at.isoformat()
    log.warning(
        "AWS reports public key version %d expired (PublicKeyRotationTimestamp %s); "
        "rotate the key ring",
        settings.public_key_version,
        rotation,
        extra={
            "public_key_rotation_at": rotation,
            "public_key_version": settings.public_key_version,
        },
    )
    return rotation


def _refusal(
    previous: Mapping[str, Any] | None,
    instance_id: str,
    settings: SidecarSettings,
    attempts: Attempts,
) -> tuple[str, str] | None:
    """(reason, message) when this instance must be denied without calling AWS.

    An earlier denial's attempt counts are carried into `attempts`, so the rewritten status still
    shows that AWS was called (and the denial stays final across any number of restarts).
    """
    earlier = earlier_denial(previous, instance_id, settings.metering_product_code)
    if earlier is not None and previous is not None:
        attempts.carry(dict(previous))
        return earlier
    why = untrusted(settings.metering_product_code, settings.trusted_product_codes)
    return None if why is None else (UNTRUSTED_PRODUCT_CODE, why)


def earlier_denial(
    previous: Mapping[str, Any] | None, instance_id: str, product_code: str
) -> tuple[str, str] | None:
    """(reason, message) when this instance was already denied after calling RegisterUsage.

    AWS answers CustomerNotEntitled / PlatformNotSupported only to the FIRST RegisterUsage of a
    pod or task; later calls from it succeed. A restarted sidecar container (native sidecar killed
    by its startupProbe, an init container retried by the kubelet) finds its earlier status in the
    pod's status volume: it must not ask again, or a denied pod would be entitled on its second
    try. Denials reached without calling AWS (attempts 0) are not final and are re-evaluated.
    """
    if not previous or previous.get("state") != DENIED:
        return None
    if previous.get("instance") != instance_id or previous.get("product_code") != product_code:
        return None
    attempts = previous.get("attempts")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        return None
    reason = str(previous.get("reason") or "Denied")
    return reason, (
        f"this {('pod', 'task')[instance_id.startswith('arn:')]} was denied earlier ({reason}); "
        "AWS Marketplace answers only a pod's first RegisterUsage, so the denial is final: "
        "delete the pod (or stop the task) to register again"
    )


def _prepare(
    settings: SidecarSettings, environ: Mapping[str, str], clock: Clock
) -> tuple[instance.Instance, str, RsaPublicKey | None]:
    """Identity, region, endpoint, AWS credentials check and key: all before calling AWS."""
    me, region = identify(settings, environ, clock)
    key = None
    if settings.verify_signature:
        key = keyring.load_key(
            str(settings.public_keys), settings.public_key_version, settings.image_policy
        )
    else:
        log.warning(
            "SIGNATURE VERIFICATION IS DISABLED (%s=false): any token is accepted; "
            "never run a product like this",
            env_name("verify_signature"),
        )
    log.info(
        "registering %s as %s %s in %s",
        settings.metering_product_code,
        me.kind,
        me.id,
        region,
        extra={
            "instance": me.id,
            "instance_kind": me.kind,
            "region": region,
            "product_code": settings.metering_product_code,
        },
    )
    return me, region, key


def _register_with_retry(
    settings: SidecarSettings,
    client: Any,
    me: instance.Instance,
    report: Report,
    clock: Clock,
) -> Registration:
    from entitlement_sidecar.aws.metering import register_usage

    attempts, started = report.attempts, report.started

    def attempt() -> Registration:
        attempts.nonce = make_nonce(me.id)
        begun = clock.monotonic()
        try:
            answer = register_usage(
                client, settings.metering_product_code, settings.public_key_version, attempts.nonce
            )
        except MarketplaceError as error:
            attempts.record(error.code, clock.monotonic() - begun)
            raise
        attempts.record(SUCCESS, clock.monotonic() - begun)
        return answer

    endpoint = endpoint_host(client)

    def on_retry(number: int, error: MarketplaceError, delay: float) -> None:
        log.warning(
            "RegisterUsage at %s failed (%s), retry %d in %.2f s",
            endpoint,
            error.code,
            number,
            delay,
            extra={
                "endpoint": endpoint,
                "reason": error.code,
                "attempt": number,
                "retry_in_seconds": round(delay, 3),
            },
        )

    backoff = HerdBackoff(
        settings.backoff_initial,
        2.0,
        settings.backoff_max,
        herd=settings.herd_size,
        rate=rules.QUOTAS_PER_SECOND["RegisterUsage"],
        head_start=clock.monotonic() - started,
    )
    return call_with_retry(
        attempt,
        budget=settings.startup_timeout,
        backoff=backoff,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        on_retry=on_retry,
    )


def endpoint_host(client: Any) -> str:
    """The host (and port) the client sends RegisterUsage to, for log lines."""
    url = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
    return urlsplit(url).netloc or url or "?"


def _verify(settings: SidecarSettings, key: RsaPublicKey | None, token: str, nonce: str) -> bool:
    """True when verified; False when verification is switched off; `TokenRejected` otherwise."""
    if key is None:
        log.warning(
            "token accepted WITHOUT signature verification (%s=false)", env_name("verify_signature")
        )
        return False
    expected = Expected(settings.metering_product_code, settings.public_key_version, nonce=nonce)
    verify(token, key, expected)
    return True
