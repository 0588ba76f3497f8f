"""What chart users expect: registries and pull secrets, a private CA, metadata, probes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.helm import (
    EXAMPLE_CHART,
    OPERATOR_CHART,
    REPO,
    SIDECAR_CHART,
    Doc,
    Helm,
    HelmError,
    container,
    find,
    pod_spec,
)

OPERATOR = {"productCode": "prod-x", "dimensions": ["nodes"]}
CHARTS = [SIDECAR_CHART, OPERATOR_CHART, EXAMPLE_CHART]


def operator_pod(docs: list[Doc]) -> Doc:
    """The operator Deployment's pod spec."""
    spec: Doc = find(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def sidecar(docs: list[Doc]) -> Doc:
    """The sidecar container of example-app (native shape)."""
    return container(pod_spec(docs)["initContainers"], "entitlement-sidecar")


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.name)
def test_chart_metadata_names_home_sources_maintainers_and_icon(chart: Path) -> None:
    """Chart.yaml carries home, sources, maintainers and an icon; the icon ships in docs/."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert meta["home"].startswith("https://")
    assert meta["sources"]
    assert all(url.startswith("https://") for url in meta["sources"])
    assert meta["maintainers"]
    assert all(m["name"] for m in meta["maintainers"])
    assert meta["icon"].endswith("/docs/icon.svg")
    assert (REPO / "docs" / "icon.svg").read_text().startswith("<svg")


@pytest.mark.parametrize(
    ("values", "sidecar_image", "app_image"),
    [
        ({}, "entitlement-sidecar:0.1.0", "nginxinc/nginx-unprivileged:1.27-alpine"),
        (
            {
                "entitlement": {
                    "image": {"registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com"}
                }
            },
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/entitlement-sidecar:0.1.0",
            "nginxinc/nginx-unprivileged:1.27-alpine",
        ),
        (
            {
                "global": {"imageRegistry": "mirror.example/"},
                "entitlement": {"image": {"registry": "ignored.example"}},
            },
            "mirror.example/entitlement-sidecar:0.1.0",
            "mirror.example/nginxinc/nginx-unprivileged:1.27-alpine",
        ),
    ],
    ids=["default", "per-image-registry", "global-registry-wins"],
)
def test_registries_prefix_the_images(
    helm: Helm, example_chart: Path, values: dict[str, Any], sidecar_image: str, app_image: str
) -> None:
    """`image.registry` prefixes the sidecar image; `global.imageRegistry` overrides every one."""
    docs = helm.template(example_chart, values=values)
    assert sidecar(docs)["image"] == sidecar_image
    assert container(pod_spec(docs)["containers"], "app")["image"] == app_image


def test_operator_image_registry(helm: Helm) -> None:
    """The operator image takes its registry, and `global.imageRegistry` wins over it."""
    own = helm.template(OPERATOR_CHART, values={**OPERATOR, "image": {"registry": "reg.a"}})
    assert operator_pod(own)["containers"][0]["image"] == "reg.a/entitlement-sidecar-operator:0.1.0"
    values = {**OPERATOR, "global": {"imageRegistry": "reg.b"}, "image": {"registry": "reg.a"}}
    docs = helm.template(OPERATOR_CHART, values=values)
    assert (
        operator_pod(docs)["containers"][0]["image"] == "reg.b/entitlement-sidecar-operator:0.1.0"
    )


def test_pull_secrets_from_global_and_each_chart_once(helm: Helm, example_chart: Path) -> None:
    """The pod gets the app's, the global and the sidecar's pull secrets, each name once, in the
    string or `{name: ...}` form."""
    values = {
        "global": {"imagePullSecrets": ["ecr", {"name": "mirror"}]},
        "imagePullSecrets": [{"name": "app"}, {"name": "ecr"}],
        "entitlement": {"imagePullSecrets": ["sidecar-only", "mirror"]},
    }
    spec = pod_spec(helm.template(example_chart, values=values))
    assert spec["imagePullSecrets"] == [
        {"name": "app"},
        {"name": "ecr"},
        {"name": "mirror"},
        {"name": "sidecar-only"},
    ]
    docs = helm.template(
        OPERATOR_CHART,
        values={**OPERATOR, "global": {"imagePullSecrets": ["ecr"]}, "imagePullSecrets": ["own"]},
    )
    assert operator_pod(docs)["imagePullSecrets"] == [{"name": "ecr"}, {"name": "own"}]
    assert "imagePullSecrets" not in pod_spec(helm.template(example_chart))


@pytest.mark.parametrize("source", ["configMap", "secret"])
def test_private_ca_from_a_configmap_or_a_secret(
    helm: Helm, example_chart: Path, source: str
) -> None:
    """The private CA bundle is mounted read-only from a ConfigMap or a Secret in both charts."""
    ca = {source: "corp-ca", "key": "bundle.pem"}
    expected = (
        {"configMap": {"name": "corp-ca"}}
        if source == "configMap"
        else {"secret": {"secretName": "corp-ca"}}
    )
    docs = helm.template(example_chart, values={"entitlement": {"caBundle": ca}})
    env = {e["name"]: e.get("value") for e in sidecar(docs)["env"]}
    assert env["AWS_CA_BUNDLE"] == "/etc/entitlement-sidecar/ca/bundle.pem"
    volume = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "entitlement-status-ca")
    assert {k: v for k, v in volume.items() if k != "name"} == expected
    docs = helm.template(OPERATOR_CHART, values={**OPERATOR, "caBundle": ca})
    volume = next(v for v in operator_pod(docs)["volumes"] if v["name"] == "ca")
    assert {k: v for k, v in volume.items() if k != "name"} == expected


@pytest.mark.parametrize("skip_schema", [False, True], ids=["schema", "template-guard"])
def test_ca_from_both_a_configmap_and_a_secret_is_refused(
    helm: Helm, example_chart: Path, skip_schema: bool
) -> None:
    """A CA bundle from a ConfigMap and a Secret at once is ambiguous and refused."""
    ca = {"configMap": "a", "secret": "b"}
    extra = ("--skip-schema-validation",) if skip_schema else ()
    with pytest.raises(HelmError, match=r"caBundle"):
        helm.template(example_chart, values={"entitlement": {"caBundle": ca}}, extra=extra)
    with pytest.raises(HelmError, match=r"caBundle"):
        helm.template(OPERATOR_CHART, values={**OPERATOR, "caBundle": ca}, extra=extra)


def test_operator_has_a_readiness_probe(helm: Helm) -> None:
    """The operator container has a readiness probe on its metrics port as well as liveness."""
    docs = helm.template(OPERATOR_CHART, values=OPERATOR)
    operator = operator_pod(docs)["containers"][0]
    assert operator["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert operator["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_every_operator_object_is_labelled_alike(helm: Helm) -> None:
    """The CRD and every other object carry the same standard labels (and commonLabels)."""
    docs = helm.template(OPERATOR_CHART, values={**OPERATOR, "commonLabels": {"team": "billing"}})
    # The `helm test` Pod differs in its component on purpose (no ReplicaSet may adopt it).
    labels = [
        {k: v for k, v in d["metadata"]["labels"].items() if k != "app.kubernetes.io/component"}
        for d in docs
    ]
    assert len({tuple(sorted(label.items())) for label in labels}) == 1
    assert labels[0]["app.kubernetes.io/managed-by"] == "Helm"
    assert labels[0]["team"] == "billing"
    assert "CustomResourceDefinition" in {d["kind"] for d in docs}


def test_no_template_reads_release_service() -> None:
    """Labels say `managed-by: Helm` literally (EKS add-ons allow only .Release.Name/Namespace)."""
    for chart in CHARTS:
        for path in (chart / "templates").rglob("*"):
            if path.is_file():
                assert not re.search(r"\.Release\.Service", path.read_text()), path
