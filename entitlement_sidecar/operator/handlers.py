"""The kopf handlers: kopf runs the process (signals, logging, startup and cleanup).

The startup handler is the composition root (unless a test put a ready `runtime` in `memo`); it
starts the workload watches (`watcher.py`: one stream per resource, not kopf's per-object
handlers, whose workers cost too much memory at 100,000 workloads) and the close/send loop as a
background task. Nothing is ever written to customer objects: no finalizers, no progress or
diff-base annotations (kopf's storages are still pointed at our own prefix, never
`kopf.zalando.org`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from entitlement_sidecar.operator.annotations import PREFIX
from entitlement_sidecar.operator.metrics import MetricsServer
from entitlement_sidecar.operator.store import TIMEOUT
from entitlement_sidecar.operator.watcher import Watcher
from entitlement_sidecar.operator.wiring import Runtime, production

log = logging.getLogger(__name__)


def configure(settings: kopf.OperatorSettings) -> None:
    """Keep kopf off customer objects and out of cluster-wide scans."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.enabled = False  # our own Events only (engine/store)
    settings.scanning.disabled = True  # fixed namespaces or cluster-wide; no CRD/namespace scans
    # Per-object workers (and the last event each holds) exit after 1 s idle, not 5 s: with
    # 10,000 workloads this cuts the operator's RSS by about a third (`batching` in older kopf).
    queueing = getattr(settings, "queueing", None) or settings.batching
    queueing.idle_timeout = 1.0
    # kopf's own requests end inside the Lease too (its watch streams are long by design: they
    # only read, and never decide what is sent).
    settings.networking.connect_timeout = TIMEOUT[0]
    settings.networking.request_timeout = sum(TIMEOUT)


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Tests hand a ConnectionInfo in `memo`; production uses the kubernetes client's config."""
    info: kopf.ConnectionInfo | None = memo.get("connection")
    return info if info is not None else kopf.login_via_client(memo=memo, **kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    if "runtime" not in memo:
        memo.runtime = await asyncio.to_thread(production, memo.config)
        memo.server = MetricsServer(
            memo.runtime.metrics, memo.config.metrics_port, tick_seconds=memo.runtime.tick_seconds
        ).start()
        log.info("serving /metrics and /livez", extra={"port": memo.server.port})
    runtime: Runtime = memo.runtime
    namespaces = memo.get("namespaces") or list(runtime.namespaces)
    memo.watcher = Watcher(runtime.api, runtime.engine, runtime.events, runtime.now, namespaces)
    runtime.engine.ready = memo.watcher.ready  # no resume before every workload was listed
    memo.watcher.start()
    if memo.get("drive_ticks", True):
        memo.loop_task = asyncio.create_task(tick_forever(memo.runtime))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("watcher") is not None:
        await asyncio.to_thread(memo.watcher.stop)
    task: asyncio.Task[None] | None = memo.get("loop_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await asyncio.to_thread(memo.runtime.engine.shutdown)
        except Exception:
            log.exception("final checkpoint failed; the last periodic one stands")
    if memo.get("server") is not None:
        memo.server.stop()


async def tick_forever(runtime: Runtime) -> None:
    """The production driver of `Engine.tick`: every TICK_SECONDS, errors logged and retried."""
    while True:
        try:
            await asyncio.to_thread(runtime.engine.tick)
        except Exception:
            log.exception("close/send loop failed; retrying next tick")
            runtime.metrics.tick_errors.inc()
        runtime.metrics.tick_completed()
        await asyncio.sleep(runtime.tick_seconds)
