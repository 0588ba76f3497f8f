"""The API-server rules the ledger relies on, added to kmock (which does not enforce them).

kmock 0.8 merges patches naively, never moves `resourceVersion` and ignores `labelSelector`. The
operator's single-sender guarantee rests on two real API-server behaviours, so this subclass adds
exactly those, as the API server defines them, and nothing else:

1. Optimistic concurrency: every create, update or patch of an object gives it a new
   `metadata.resourceVersion` (one counter for the whole server, as etcd's revision), and a write
   that carries a `metadata.resourceVersion` other than the stored one is refused with
   `409 Conflict` without changing anything. A write without one is unconditional.
2. List filtering by equality-based label selectors (`k=v`, `k!=v`, `k`, `!k`, comma = and).

Writes are serialized by one lock, so the check and the write are atomic, as in etcd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kmock

WRITES = frozenset({kmock.action.CREATE, kmock.action.UPDATE})


class VersionedKubernetes(kmock.KubernetesEmulator):
    """kmock's in-memory Kubernetes API plus resourceVersion preconditions and label selectors."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._writes = asyncio.Lock()
        self._revision = 0
        self.conflicts = 0  # writes refused with 409 (for assertions)

    async def _handle(self, request: Any) -> Any:
        if request.resource is None or request.action not in WRITES:
            return await super()._handle(request)
        async with self._writes:
            if request.action is kmock.action.UPDATE and request.name is not None:
                self._check_precondition(request)
            if isinstance(request.data, dict):
                self._revision += 1
                metadata = request.data.setdefault("metadata", {})
                metadata["resourceVersion"] = str(self._revision)
            return await super()._handle(request)

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
        return answer


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
