"""Who we are: the pod UID (Kubernetes downward API) or the ECS task ARN (task metadata v4).

The identity goes into every nonce, so a token proves which instance it was issued to. Order:
`POD_UID`, then the ECS task ARN from `$ECS_CONTAINER_METADATA_URI_V4/task`, then an explicit
`ENTITLEMENT_INSTANCE_ID` (local runs, the demo). A platform identity always wins over the explicit
one. Neither -> `ConfigurationError`. The ECS fetch uses urllib (imported only on ECS) with a short
timeout; a failure there is transient (the agent may still be starting).
"""

from __future__ import annotations

import json

from entitlement_sidecar.errors import ConfigurationError, TransientError
from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar.envlite import clean_id

TYPE_CHECKING = False  # keep `typing` out of the `check --verify` probe; mypy reads this block
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

POD = "pod"
ECS_TASK = "ecs-task"
EXPLICIT = "explicit"
ECS_METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
INSTANCE_ID_ENV = "ENTITLEMENT_INSTANCE_ID"
MAX_ID = 1024


class Instance(Record):
    """This pod or task: its id (nonce tag source), kind, and the region ECS metadata names."""

    __slots__ = ("id", "kind", "region")

    def __init__(self, id: str, kind: str, region: str | None = None) -> None:
        self.id = id
        self.kind = kind
        self.region = region


def _clean(value: str | None) -> str | None:
    return clean_id(value, MAX_ID)


def fetch_ecs_task(base_uri: str, timeout: float = 2.0) -> dict[str, Any]:
    """GET `<base_uri>/task` (ECS task metadata v4); raise `TransientError` when unreachable."""
    import http.client
    import urllib.request

    url = base_uri.rstrip("/") + "/task"
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{ECS_METADATA_ENV} is not an http URL", variable=ECS_METADATA_ENV
        )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only
            body = response.read(1 << 20)
        task = json.loads(body)
    except (OSError, ValueError, RecursionError, http.client.HTTPException) as exc:
        # Not an HTTP answer, cut short, not JSON: the agent may still be starting.
        raise TransientError("EcsMetadataUnavailable", f"{url}: {exc!r}"[:300]) from exc
    if not isinstance(task, dict):
        raise TransientError("EcsMetadataUnavailable", f"{url}: not a JSON object")
    return task


def _ecs_instance(task: Mapping[str, Any]) -> Instance:
    arn = task.get("TaskARN")
    if not isinstance(arn, str) or not arn.startswith("arn:") or not _clean(arn):
        raise TransientError("EcsMetadataUnavailable", "task metadata has no TaskARN")
    fields = arn.split(":")
    region = fields[3] if len(fields) > 3 and fields[3] else None
    return Instance(arn, ECS_TASK, region)


def resolve(
    environ: Mapping[str, str],
    fetch: Callable[[str], Mapping[str, Any]] = fetch_ecs_task,
) -> Instance:
    """This instance's identity; `ConfigurationError` when there is none at all."""
    pod_uid = _clean(environ.get("POD_UID"))
    if pod_uid:
        return Instance(pod_uid, POD)
    metadata = _clean(environ.get(ECS_METADATA_ENV))
    if metadata:
        return _ecs_instance(fetch(metadata))
    explicit = _clean(environ.get(INSTANCE_ID_ENV))
    if explicit:
        return Instance(explicit, EXPLICIT)
    raise ConfigurationError(
        "no instance identity: set POD_UID from the downward API (metadata.uid), run on ECS "
        f"({ECS_METADATA_ENV}), or set {INSTANCE_ID_ENV} for local runs",
        variable="POD_UID",
    )
