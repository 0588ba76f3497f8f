"""The API-server rules the ledger relies on, added to kmock (which does not enforce them).

kmock 0.8 merges patches naively, never moves `resourceVersion` and ignores `labelSelector`. The
operator's single-sender guarantee rests on two real API-server behaviours, so this subclass adds
exactly those, as the API server defines them, and nothing else:

1. Optimistic concurrency: every create, update or patch of an object gives it a new
   `metadata.resourceVersion` (one counter for the whole server, as etcd's revision), and a write
   that carries a `metadata.resourceVersion` other than the stored one is refused with
   `409 Conflict` without changing anything. A write without one is unconditional.
2. List filtering by equality-based label selectors (`k=v`, `k!=v`, `k`, `!k`, comma = and).
3. Paginated lists (`limit` and `continue`; items in namespace/name order) and watches from a
   resourceVersion, which stream only what changes after it (kmock replays every object).

Writes are serialized by one lock, so the check and the write are atomic, as in etcd.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Mapping
from typing import Any

import kmock

WRITES = frozenset({kmock.action.CREATE, kmock.action.UPDATE})
EVENTS = {
    kmock.action.CREATE: "ADDED",
    kmock.action.UPDATE: "MODIFIED",
    kmock.action.DELETE: "DELETED",
}
HISTORY = 20_000  # events kept for watches from a resourceVersion; older: 410 Gone


class VersionedKubernetes(kmock.KubernetesEmulator):
    """kmock's in-memory Kubernetes API plus resourceVersion preconditions and label selectors."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._writes = asyncio.Lock()
        self._revision = 0
        self.conflicts = 0  # writes refused with 409 (for assertions)
        self._history: list[tuple[int, Any, dict[str, Any]]] = []  # (revision, resource, event)

    async def _handle(self, request: Any) -> Any:
        if request.resource is None or request.action not in EVENTS:
            return await super()._handle(request)
        async with self._writes:
            if request.action is kmock.action.UPDATE and request.name is not None:
                self._check_precondition(request)
            self._revision += 1
            if request.action in WRITES and isinstance(request.data, dict):
                metadata = request.data.setdefault("metadata", {})
                metadata["resourceVersion"] = str(self._revision)
            response = await super()._handle(request)
            self._remember(request)
            return response

    def _remember(self, request: Any) -> None:
        """Keep the event of a write for watches that start from an earlier resourceVersion."""
        data = request.data if isinstance(request.data, dict) else {}
        metadata = data.get("metadata") or {}
        key: Any = (
            request.resource,
            request.namespace or metadata.get("namespace"),
            request.name or metadata.get("name"),
        )
        if key not in self.objects:
            return
        obj = dict(self.objects[key].last.raw)
        obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(self._revision)}
        event = {"type": EVENTS[request.action], "object": obj}
        self._history.append((self._revision, request.resource, event))
        del self._history[: max(0, len(self._history) - HISTORY)]

    def _check_precondition(self, request: Any) -> None:
        wanted = ((request.data or {}).get("metadata") or {}).get("resourceVersion")
        if wanted is None:
            return
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # the base class answers 404
        stored = (self.objects[key].get("metadata") or {}).get("resourceVersion")
        if wanted != stored:
            self.conflicts += 1
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=(
                    f"Operation cannot be fulfilled on {request.name}: the object has been "
                    "modified; please apply your changes to the latest version and try again"
                ),
            )

    async def _serve_list(self, request: Any) -> Any:
        answer: Any = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            answer["items"] = [obj for obj in answer["items"] if selects(selector, obj)]
        limit = int(request.params.get("limit") or 0)
        if limit:
            items = sorted(answer["items"], key=_place)
            after = request.params.get("continue") or ""
            items = [obj for obj in items if "/".join(_place(obj)) > after]
            answer["items"] = items[:limit]
            if len(items) > limit:
                answer["metadata"]["continue"] = "/".join(_place(items[limit - 1]))
        answer["metadata"]["resourceVersion"] = str(self._revision)
        return answer

    async def _serve_watch(self, request: Any) -> Any:
        since = request.params.get("resourceVersion")
        if since in {None, "", "0"}:
            async for event in super()._serve_watch(request):
                yield event
            return
        yield b""  # headers out: the stream is open
        seen = int(since)
        if self._history and seen < self._history[0][0] - 1:
            yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
            return
        while True:  # what happened after `since`, then what happens next
            start = bisect.bisect_right(self._history, seen, key=lambda item: item[0])
            for revision, resource, event in self._history[start:]:
                seen = revision
                namespace = event["object"].get("metadata", {}).get("namespace")
                if resource == request.resource and request.namespace in {None, namespace}:
                    yield event
            await asyncio.sleep(0.02)


def selects(selector: str, obj: Mapping[str, Any]) -> bool:
    """Whether `obj`'s labels match an equality-based label selector."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key.strip()) != value.strip()
        elif "=" in term:
            key, value = term.split("=", 1)
            ok = labels.get(key.strip().rstrip("=")) == value.strip()
        elif term.startswith("!"):
            ok = term[1:] not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


def _place(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")
