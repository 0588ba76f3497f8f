"""Every ledger object the operator writes fits the CRD and stays under 256 KiB, whatever the names.

A real API server prunes fields its structural schema does not declare (silently: a resume would
then find no checkpoint) and refuses objects over its size limit; kmock does neither, so this test
walks every version of every object a full life left in kmock against the CRD's schema. The names
are the longest Kubernetes allows and the tags the longest AWS allows.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kmock
import yaml

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, TAGS_KEY, WorkloadRef
from entitlement_sidecar.operator.ledger import GROUP, PLURAL, VERSION
from entitlement_sidecar.operator.shards import MAX_OBJECT_BYTES
from tests.delivery.helm import CRD_FILE
from tests.operator.harness import FakeClock, Kube, runtime

WORKLOADS = 3000
TAG_VALUE = "v" * 256


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    found: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def undeclared(value: Any, node: dict[str, Any], path: str) -> list[str]:
    """Fields of `value` the structural schema `node` does not declare (what would be pruned)."""
    if not isinstance(value, dict | list):
        return []
    if isinstance(value, list):
        items = node.get("items") or {}
        return [f for i, v in enumerate(value) for f in undeclared(v, items, f"{path}[{i}]")]
    properties, additional = node.get("properties"), node.get("additionalProperties")
    found = []
    for key, child in value.items():
        if properties is not None and key in properties:
            found += undeclared(child, properties[key], f"{path}.{key}")
        elif isinstance(additional, dict):
            found += undeclared(child, additional, f"{path}.{key}")
        else:
            found.append(f"{path}.{key}")
    return found


def test_every_object_written_fits_the_crd_and_256_kib(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A life at the limits (3,000 workloads with 253-character names and 256-character tags:
    checkpoint shards, a change, a close with allocation parts, sends, a restart) leaves only
    objects whose every field the CRD declares, valid against it, none above 256 KiB."""
    tags = json.dumps({"team": TAG_VALUE})
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    refs = [
        WorkloadRef("n" * 63, "StatefulSet", f"{i:05d}".ljust(253, "x")) for i in range(WORKLOADS)
    ]
    for i, ref in enumerate(refs):
        rt.engine.observe(
            ref,
            {DIMENSIONS_KEY: f'{{"users": {i % 7 + 1}, "gb": "0.5"}}', TAGS_KEY: tags},
            {},
            gone=False,
        )
    rt.engine.tick()
    clock.advance(minutes=20)
    rt.engine.tick()  # checkpoint: every shard
    rt.engine.observe(refs[0], {}, {}, gone=True)
    rt.engine.shutdown()
    second = runtime(kube, emu, clock, "AKIDPOD2")
    for i, ref in enumerate(refs[1:], start=1):
        second.engine.observe(
            ref,
            {DIMENSIONS_KEY: f'{{"users": {i % 7 + 1}, "gb": "0.5"}}', TAGS_KEY: tags},
            {},
            gone=False,
        )
    second.engine.tick()  # resumes from the shards
    clock.advance(minutes=44)
    second.engine.tick()  # 11:04: closes 10:00 (allocation parts) and sends it
    assert {r["dimension"] for r in emu.records()["meter_usage"]} == {"users", "gb"}
    hours = kmock.resource(f"{GROUP}/{VERSION}/{PLURAL}")
    crd = schema()
    sizes, kinds = [], set()
    for (resource, _, name), obj in kube.mock.objects.items():
        if resource != hours:
            continue
        spec = obj.last.get("spec") or {}
        kinds.add(spec.get("checkpoint") or ("part" if "part" in spec else "hour"))
        for version in (v for v in obj.history if v is not None):
            raw = version.raw
            body = {k: v for k, v in raw.items() if k != "metadata"}
            assert undeclared(body, crd, name) == []
            jsonschema.validate(body, crd)
            sizes.append(len(json.dumps(raw, separators=(",", ":")).encode()))
    assert kinds == {"root", "log", "base", "part", "hour"}
    assert max(sizes) < MAX_OBJECT_BYTES
