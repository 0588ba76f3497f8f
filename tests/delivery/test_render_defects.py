"""Render defects that must never come back: long names, loosened hardening, restarting labels.

- Every generated name fits its Kubernetes limit for any release name Helm accepts (53
  characters), with every optional object of both charts switched on.
- The containers' securityContext can be tightened through values but never loosened: the schema
  refuses a weaker value, and so does the template when the schema is skipped.
- Pod templates carry no version labels: a chart bump alone changes no pod template.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.helm import OPERATOR_CHART, Doc, Helm, HelmError, find

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
OPERATOR = {"productCode": "prod-x", "dimensions": ["nodes"]}
ALL_OPERATOR_OBJECTS = {
    **OPERATOR,
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}
ALL_SIDECAR_OBJECTS = {
    "entitlement": {
        "metrics": {"podMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}
RELEASES = [
    "r" * 53,
    "entitlement-operator-" + "x" * 32,
    "a" * 40 + "-" + "b" * 12,
    "x" * 25 + "-entitlement-sidecar-" + "y" * 7,
]


def names_in(doc: Doc) -> list[tuple[str, str, int, re.Pattern[str]]]:
    """(what, name, limit, pattern) for every name the document sets."""
    kind = doc["kind"]
    found = [
        (
            f"{kind} name",
            doc["metadata"]["name"],
            63,
            DNS_1035_LABEL if kind == "Service" else DNS_SUBDOMAIN,
        )
    ]
    labels = dict(doc["metadata"].get("labels") or {})
    template = doc.get("spec", {}).get("template", {})
    labels |= template.get("metadata", {}).get("labels") or {}
    found += [(f"{kind} label {k}", str(v), 63, LABEL_VALUE) for k, v in labels.items()]
    pod = template.get("spec", {})
    for field in ("initContainers", "containers"):
        for c in pod.get(field, []):
            found.append((f"{kind} container", c["name"], 63, DNS_LABEL))
            found += [(f"{kind} port", p["name"], 15, DNS_LABEL) for p in c.get("ports", [])]
    found += [(f"{kind} volume", v["name"], 63, DNS_LABEL) for v in pod.get("volumes", [])]
    found += [(f"{kind} subject", s["name"], 253, DNS_SUBDOMAIN) for s in doc.get("subjects", [])]
    return found


def too_long_or_invalid(docs: list[Doc]) -> list[str]:
    """Every name that breaks its limit or syntax, described."""
    bad = []
    for doc in docs:
        for what, name, limit, pattern in names_in(doc):
            if len(name) > limit or not pattern.fullmatch(name):
                bad.append(f"{what} {name!r} ({len(name)} > {limit} or invalid)")
    return bad


@pytest.mark.parametrize("release", RELEASES, ids=[f"{len(r)}-{r[:12]}" for r in RELEASES])
def test_operator_names_fit_for_53_character_releases(helm: Helm, release: str) -> None:
    """With a 53-character release name every operator object's name, label and port fits."""
    for values in (ALL_OPERATOR_OBJECTS, {**ALL_OPERATOR_OBJECTS, "namespaces": ["a", "b"]}):
        docs = helm.template(OPERATOR_CHART, values=values, release=release)
        assert too_long_or_invalid(docs) == []
        service = find(docs, "Service")["metadata"]["name"]
        assert service.endswith("-metrics")


@pytest.mark.parametrize("release", RELEASES, ids=[f"{len(r)}-{r[:12]}" for r in RELEASES])
def test_vendor_chart_names_fit_for_53_character_releases(
    helm: Helm, example_chart: Path, release: str
) -> None:
    """A vendor chart with every optional sidecar object renders valid names for 53 characters."""
    docs = helm.template(example_chart, values=ALL_SIDECAR_OBJECTS, release=release)
    assert {"PodMonitor", "PrometheusRule", "ConfigMap"} <= {d["kind"] for d in docs}
    assert too_long_or_invalid(docs) == []


def test_the_name_check_catches_a_long_service_name() -> None:
    """The check itself refuses the 71-character Service name the single chart used to render."""
    doc = {"kind": "Service", "metadata": {"name": "x" * 63 + "-metrics"}}
    assert too_long_or_invalid([doc])


@pytest.mark.parametrize("length", [58, 59], ids=["58-fits", "59-refused"])
def test_status_volume_name_leaves_room_for_its_suffixes(
    helm: Helm, example_chart: Path, length: int
) -> None:
    """The status volume name is at most 58 characters, so `-keys` and `-ca` still fit."""
    values = {
        "entitlement": {
            "sidecar": {"statusVolume": {"name": "v" * length}, "keyRing": {"configMap": "k"}},
            "caBundle": {"configMap": "ca"},
        }
    }
    if length > 58:
        with pytest.raises(HelmError, match="statusVolume/name"):
            helm.template(example_chart, values=values)
        return
    assert too_long_or_invalid(helm.template(example_chart, values=values)) == []


WEAKER = [
    ({"runAsUser": 0}, "runAsUser"),
    ({"runAsGroup": 0}, "runAsGroup"),
    ({"runAsNonRoot": None}, "runAsNonRoot"),
    ({"runAsNonRoot": False}, "runAsNonRoot"),
    ({"readOnlyRootFilesystem": False}, "readOnlyRootFilesystem"),
    ({"readOnlyRootFilesystem": None}, "readOnlyRootFilesystem"),
    ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
    ({"privileged": True}, "privileged"),
    ({"capabilities": {"drop": []}}, "capabilities"),
    ({"capabilities": {"add": ["NET_ADMIN"]}}, "capabilities"),
    ({"capabilities": None}, "capabilities"),
    ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile"),
    ({"seccompProfile": None}, "seccompProfile"),
    ({"appArmorProfile": {"type": "Unconfined"}}, "appArmorProfile"),
    ({"procMount": "Unmasked"}, "procMount"),
]
STRONGER = [
    {"runAsUser": 1000, "runAsGroup": 1000},
    {"runAsUser": None, "runAsGroup": None},
    {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/entitlement.json"}},
    {"appArmorProfile": {"type": "RuntimeDefault"}},
    {"privileged": False, "capabilities": {"drop": ["ALL", "NET_RAW"]}},
]
CHARTS = ["sidecar", "operator"]


def hardening_values(chart: str, context: dict[str, Any]) -> dict[str, Any]:
    """Values that set (or, with None, remove) securityContext fields of one chart."""
    if chart == "sidecar":
        return {"entitlement": {"sidecar": {"securityContext": context}}}
    return {**OPERATOR, "securityContext": context}


def rendered_context(helm: Helm, target: Path, chart: str, context: dict[str, Any]) -> Doc:
    """The securityContext the chart renders for those values."""
    docs = helm.template(target, values=hardening_values(chart, context))
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    containers = pod.get("initContainers", []) + pod["containers"]
    name = "entitlement-sidecar" if chart == "sidecar" else "operator"
    context_doc: Doc = next(c for c in containers if c["name"] == name)["securityContext"]
    return context_doc


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize(("context", "field"), WEAKER, ids=[str(w[0]) for w in WEAKER])
def test_weaker_security_context_is_refused_by_schema_and_template(
    helm: Helm, example_chart: Path, chart: str, context: dict[str, Any], field: str
) -> None:
    """A weaker securityContext value is refused by the schema, and by the template guard when
    the schema is skipped, naming the field."""
    target = example_chart if chart == "sidecar" else OPERATOR_CHART
    values = hardening_values(chart, context)
    with pytest.raises(HelmError) as schema:
        helm.template(target, values=values)
    assert "schema" in schema.value.stderr
    assert field in schema.value.stderr
    with pytest.raises(HelmError) as guard:
        helm.template(target, values=values, extra=("--skip-schema-validation",))
    assert f"securityContext.{field}" in guard.value.stderr


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("context", STRONGER, ids=[str(s) for s in STRONGER])
def test_tighter_or_platform_assigned_contexts_render(
    helm: Helm, example_chart: Path, chart: str, context: dict[str, Any]
) -> None:
    """Other non-root ids, no fixed id (the platform assigns one), a Localhost profile or more
    dropped capabilities render as given, the hardening kept."""
    target = example_chart if chart == "sidecar" else OPERATOR_CHART
    rendered = rendered_context(helm, target, chart, context)
    assert rendered["runAsNonRoot"] is True
    assert rendered["readOnlyRootFilesystem"] is True
    assert rendered["allowPrivilegeEscalation"] is False
    assert "ALL" in rendered["capabilities"]["drop"]
    for key, value in context.items():
        if value is None:
            assert key not in rendered
        else:
            assert rendered[key] == value


def bumped(chart: Path, workdir: Path, version: str) -> Path:
    """A copy of a chart (and its vendored dependencies) whose own version is `version`."""
    copy = workdir / chart.name
    shutil.copytree(chart, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta["version"] = version
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return copy


def pod_templates(docs: list[Doc]) -> list[Doc]:
    """The pod templates of every workload."""
    return [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]


@pytest.mark.parametrize("chart", ["operator", "example-app"])
def test_a_chart_bump_changes_no_pod_template(
    helm: Helm, example_chart: Path, tmp_path: Path, chart: str
) -> None:
    """Pod templates carry neither `helm.sh/chart` nor `app.kubernetes.io/version`, so a new chart
    version renders the same pod templates (no rolling restart) and the same selectors."""
    source, values = (OPERATOR_CHART, OPERATOR) if chart == "operator" else (example_chart, {})
    before = helm.template(source, values=values)
    after = helm.template(bumped(source, tmp_path, "9.9.9"), values=values)
    assert pod_templates(before)
    assert pod_templates(after) == pod_templates(before)
    for template in pod_templates(before):
        assert {"helm.sh/chart", "app.kubernetes.io/version"}.isdisjoint(
            template["metadata"]["labels"]
        )
    deployment = next(d for d in after if d["kind"] == "Deployment")
    assert deployment["metadata"]["labels"]["helm.sh/chart"].endswith("-9.9.9")  # objects: yes
