"""Composition root of the operator: settings + clients + clock -> the running parts.

The only place that turns `OperatorSettings` into collaborators. Production calls it from the kopf
startup handler with real clients and the wall clock; tests call it with kmock's API client, an
emulator-backed Metering client, a fake clock and crash hooks.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from kubernetes import client as k8s

from entitlement_sidecar.operator.engine import Engine
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.sender import Hook, Sender, no_hook
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.store import EventSink, Lease, LedgerStore

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient


# Seconds of Lease that must remain for an AWS call to start: more than the call can take.
LEASE_MARGIN_SECONDS = 20.0
AWS_CONNECT_TIMEOUT, AWS_READ_TIMEOUT = 5.0, 10.0
# Another instance's unrecorded claim is resent only this many Lease durations after it was
# made: time for an instance that stalled mid-send to wake up and record its own outcome.
RESEND_GRACE_LEASES = 5


def wall_clock() -> datetime:
    """The production clock: aware UTC now."""
    return datetime.now(UTC)


def instance_identity() -> str:
    """This process's owner id in the Lease and the ledger: pod name plus a per-start suffix."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Runtime:
    """What the kopf handlers need: the engine, the Event sink and the loop period."""

    engine: Engine
    events: EventSink
    metrics: Metrics
    tick_seconds: float
    now: Callable[[], datetime]
    api: k8s.ApiClient
    namespaces: tuple[str, ...] = ()


def build(
    settings: OperatorSettings,
    api: k8s.ApiClient,
    metering: MarketplaceMeteringClient,
    *,
    now: Callable[[], datetime] = wall_clock,
    rng: Callable[[], float] = random.random,
    identity: str | None = None,
    metrics: Metrics | None = None,
    hook: Hook = no_hook,
    lease_namespace: str | None = None,
) -> Runtime:
    """Wire every collaborator from `settings`; the Lease lives in `lease_namespace` (the
    operator's own, where the chart grants it) or else in the ledger's namespace."""
    metrics = metrics or Metrics()
    me = identity or instance_identity()
    store = LedgerStore(api, settings.ledger_namespace)
    events = EventSink(api)
    lease_duration = timedelta(seconds=max(60.0, 4 * settings.tick_seconds))
    lease_ns = lease_namespace or settings.ledger_namespace
    lease = Lease(api, lease_ns, me, lease_duration, now, settings.lease_name)
    # An AWS call starts only while the Lease has LEASE_MARGIN left, and ends (AWS_TIMEOUT)
    # before another instance may take the Lease over; so does every Kubernetes call (TIMEOUT).
    lease_margin = timedelta(seconds=LEASE_MARGIN_SECONDS)
    sender = Sender(
        store=store,
        events=events,
        client=metering,
        metrics=metrics,
        identity=me,
        now=now,
        rng=rng,
        product_code=settings.product_code,
        holds_lease=lambda: lease.valid(lease_margin),
        dry_run=settings.dry_run,
        send_zero=settings.send_zero,
        jitter=timedelta(seconds=settings.send_jitter_seconds),
        margin=timedelta(seconds=settings.safety_margin_seconds),
        grace=RESEND_GRACE_LEASES * lease_duration,
        hook=hook,
    )
    engine = Engine(
        sender=sender,
        store=store,
        lease=lease,
        metrics=metrics,
        now=now,
        dimensions=frozenset(settings.dimensions),
        tag_keys=frozenset(settings.tag_keys),
        checkpoint_interval=timedelta(seconds=settings.checkpoint_seconds),
        retention=timedelta(days=settings.retention_days) if settings.retention_days else None,
    )
    return Runtime(engine, events, metrics, settings.tick_seconds, now, api, settings.namespaces)


def production(settings: OperatorSettings) -> Runtime:
    """The runtime against the real cluster and AWS: in-cluster (or kubeconfig) credentials, the
    region from settings or the environment, and the wall clock."""
    import logging

    from entitlement_sidecar.aws.environment import detect_identity, resolve_region
    from entitlement_sidecar.aws.metering import make_client

    identity = detect_identity(os.environ)
    if not identity.supported:
        logging.getLogger(__name__).warning(
            "AWS identity is not one MeterUsage accepts on EKS (use IRSA)",
            extra={"identity": identity.kind, "detail": identity.detail},
        )
    region = resolve_region(settings.region, os.environ)
    return build(
        settings,
        kube_api(),
        make_client(region, connect_timeout=AWS_CONNECT_TIMEOUT, read_timeout=AWS_READ_TIMEOUT),
        lease_namespace=os.environ.get("POD_NAMESPACE"),
    )


def kube_api() -> k8s.ApiClient:
    """A Kubernetes API client: in-cluster credentials in a pod, else the current kubeconfig."""
    from kubernetes import config as k8s_config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()
