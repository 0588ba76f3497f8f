"""The sidecar as a vendor chart renders it: the three shapes, probes, volumes, security."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.delivery.helm import (
    KUBE_VERSIONS,
    SHAPES,
    SIDECAR_CHART,
    Doc,
    Helm,
    HelmError,
    container,
    pod_spec,
)

SIDECAR = "entitlement-sidecar"
STATUS_DIR = "/var/run/entitlement"
PORT = 9841


def shape_values(shape: str, **sidecar: Any) -> dict[str, Any]:
    """example-app values selecting a shape (plus extra sidecar values)."""
    return {"entitlement": {"sidecar": {"shape": shape, **sidecar}}}


def render(helm: Helm, chart: Path, shape: str, version: str = "1.33.0") -> list[Doc]:
    """example-app rendered in one shape for one Kubernetes version."""
    return helm.template(chart, kube_version=version, values=shape_values(shape))


def sidecar_of(spec: Doc, shape: str) -> Doc:
    """The sidecar container, from initContainers or containers depending on the shape."""
    where = "containers" if shape == "classic" else "initContainers"
    return container(spec[where], SIDECAR)


def strict_validate(docs: list[Doc], version: str) -> None:
    """Every built-in document passes the strict Kubernetes schema of that version."""
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: {exc}")


@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
@pytest.mark.parametrize("shape", ["auto", *SHAPES], ids=("auto", *SHAPES))
def test_every_shape_renders_valid_kubernetes(
    helm: Helm, example_chart: Path, shape: str, version: str
) -> None:
    """Each shape renders documents that pass the strict schema of each supported version."""
    docs = render(helm, example_chart, shape, version)
    assert {d["kind"] for d in docs} == {"Deployment", "ServiceAccount", "Pod"}  # Pod: helm test
    strict_validate(docs, version)


@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
def test_default_values_render_valid_kubernetes(
    helm: Helm, example_chart: Path, version: str
) -> None:
    """The example chart's default values render valid documents for each supported version."""
    strict_validate(helm.template(example_chart, kube_version=version), version)


def test_native_shape_is_a_restartable_init_container_gated_by_startup_probe(
    helm: Helm, example_chart: Path
) -> None:
    """Native: an init container with restartPolicy Always and a startupProbe on /readyz."""
    spec = pod_spec(render(helm, example_chart, "native"))
    sidecar = container(spec["initContainers"], SIDECAR)
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"] == ["run"]
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/readyz", "port": PORT}
    assert SIDECAR not in [c["name"] for c in spec["containers"]]


@pytest.mark.parametrize(
    ("timeout", "period", "slack"),
    [(1800, 5, 60), (1800, 7, 0), (30, 10, 0), (1, 1, 0), (3600, 3, 15)],
    ids=["default", "uneven-period", "short", "minimal", "long"],
)
def test_native_startup_probe_budget_covers_startup_timeout(
    helm: Helm, example_chart: Path, timeout: int, period: int, slack: int
) -> None:
    """The startupProbe's failure budget covers STARTUP_TIMEOUT plus slack even when its first
    failure comes right at container start (the kubelet's probe grid), with the least count."""
    values = shape_values(
        "native",
        startupTimeoutSeconds=timeout,
        startupProbe={"periodSeconds": period, "slackSeconds": slack},
    )
    spec = pod_spec(helm.template(example_chart, values=values))
    sidecar = container(spec["initContainers"], SIDECAR)
    probe = sidecar["startupProbe"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert str(timeout) == env["ENTITLEMENT_STARTUP_TIMEOUT"]
    assert probe["periodSeconds"] == period
    assert probe["periodSeconds"] * (probe["failureThreshold"] - 1) >= timeout + slack
    assert probe["periodSeconds"] * (probe["failureThreshold"] - 2) < timeout + slack


def test_default_startup_budget_is_thirty_minutes_and_a_minute(
    helm: Helm, example_chart: Path
) -> None:
    """With defaults the kubelet gives the sidecar at least 1860 s before restarting it."""
    sidecar = sidecar_of(pod_spec(render(helm, example_chart, "native")), "native")
    probe = sidecar["startupProbe"]
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (5, 373)
    assert probe["periodSeconds"] * (probe["failureThreshold"] - 1) == 1860


def test_classic_shape_is_a_container_gating_readiness(helm: Helm, example_chart: Path) -> None:
    """Classic: a regular container whose readinessProbe is /readyz, no restartPolicy, no init."""
    spec = pod_spec(render(helm, example_chart, "classic"))
    sidecar = container(spec["containers"], SIDECAR)
    assert "initContainers" not in spec
    assert "restartPolicy" not in sidecar
    assert "startupProbe" not in sidecar
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORT}


def test_init_shape_is_a_one_shot_register(helm: Helm, example_chart: Path) -> None:
    """Init: a plain init container running `register`, no probes, no port."""
    spec = pod_spec(render(helm, example_chart, "init"))
    sidecar = container(spec["initContainers"], SIDECAR)
    assert sidecar["args"] == ["register"]
    for key in ("restartPolicy", "startupProbe", "readinessProbe", "livenessProbe", "ports"):
        assert key not in sidecar, key
    assert "readinessProbe" not in container(spec["containers"], "app")


@pytest.mark.parametrize("shape", ["native", "classic"], ids=("native", "classic"))
def test_running_shapes_have_liveness_on_livez_and_readiness_on_readyz(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """Running shapes probe /livez for liveness and /readyz for readiness on the sidecar port."""
    sidecar = sidecar_of(pod_spec(render(helm, example_chart, shape)), shape)
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/livez", "port": PORT}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORT}
    assert sidecar["ports"] == [{"name": "entitlement", "containerPort": PORT, "protocol": "TCP"}]


@pytest.mark.parametrize("shape", ["native", "classic"], ids=("native", "classic"))
def test_app_readiness_probe_points_at_the_sidecar(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """The app snippet's readinessProbe targets the sidecar's /readyz port."""
    app = container(pod_spec(render(helm, example_chart, shape))["containers"], "app")
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORT}


def test_custom_port_moves_every_probe(helm: Helm, example_chart: Path) -> None:
    """A non-default port is used by the env, the container port and every probe."""
    values = shape_values("native", port=19841)
    spec = pod_spec(helm.template(example_chart, values=values))
    sidecar = container(spec["initContainers"], SIDECAR)
    app = container(spec["containers"], "app")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["ENTITLEMENT_PORT"] == "19841"
    for probe in (sidecar["startupProbe"], sidecar["readinessProbe"], app["readinessProbe"]):
        assert probe["httpGet"]["port"] == 19841


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPES)
def test_status_volume_is_memory_backed_and_read_only_in_the_app(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """The status volume is a small in-memory emptyDir, read-only in the app."""
    spec = pod_spec(render(helm, example_chart, shape))
    volume = next(v for v in spec["volumes"] if v["name"] == "entitlement-status")
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Mi"}
    app_mounts = container(spec["containers"], "app")["volumeMounts"]
    app_mount = next(m for m in app_mounts if m["name"] == "entitlement-status")
    assert app_mount == {"name": "entitlement-status", "mountPath": STATUS_DIR, "readOnly": True}
    sidecar_mount = sidecar_of(spec, shape)["volumeMounts"][0]
    assert sidecar_mount == {"name": "entitlement-status", "mountPath": STATUS_DIR}


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPES)
def test_sidecar_env_carries_settings_and_downward_api_identity(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """The sidecar gets its ENTITLEMENT_ settings and the pod's UID, namespace and name."""
    sidecar = sidecar_of(pod_spec(render(helm, example_chart, shape)), shape)
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["ENTITLEMENT_PRODUCT_CODE"]["value"] == "exampleproductcode0000001"
    assert env["ENTITLEMENT_STATUS_DIR"]["value"] == STATUS_DIR
    assert env["ENTITLEMENT_PUBLIC_KEY_VERSION"]["value"] == "1"
    assert env["ENTITLEMENT_VERIFY_SIGNATURE"]["value"] == "true"
    for name, path in (
        ("POD_UID", "metadata.uid"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ):
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": path}}
    assert "ENTITLEMENT_TRUSTED_PRODUCT_CODES" not in env, "the allow-list belongs in the image"


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPES)
def test_sidecar_security_context_is_hardened(helm: Helm, example_chart: Path, shape: str) -> None:
    """The sidecar runs as 65532, read-only root, no privilege escalation, no capabilities."""
    sidecar = sidecar_of(pod_spec(render(helm, example_chart, shape)), shape)
    assert sidecar["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert sidecar["resources"]["limits"]["memory"] == "128Mi"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.27.0", "classic"), ("1.28.9", "classic"), ("1.29.0", "native"), ("1.37.0", "native")],
    ids=["1.27", "1.28", "1.29", "1.37"],
)
def test_auto_shape_follows_the_cluster_version(
    helm: Helm, example_chart: Path, version: str, expected: str
) -> None:
    """`auto` picks native from Kubernetes 1.29 on and classic below, and validates there."""
    docs = render(helm, example_chart, "auto", version)
    spec = pod_spec(docs)
    sidecar_of(spec, expected)
    strict_validate(docs, version)


def test_native_shape_refused_below_1_29(helm: Helm, example_chart: Path) -> None:
    """Forcing native on a cluster without native sidecars fails with a clear message."""
    with pytest.raises(HelmError, match=r"native needs Kubernetes >= 1\.29"):
        render(helm, example_chart, "native", "1.28.0")


def test_digest_pins_the_image_and_key_ring_and_ca_are_mounted(
    helm: Helm, example_chart: Path
) -> None:
    """A digest replaces the tag; a key ring ConfigMap and a CA bundle are mounted read-only."""
    digest = "sha256:" + "a" * 64
    values: dict[str, Any] = {
        "entitlement": {
            "image": {"repository": "registry.example/seller/app-sidecar", "digest": digest},
            "sidecar": {"shape": "native", "keyRing": {"configMap": "seller-keys"}},
            "caBundle": {"configMap": "corp-ca"},
            "proxy": {"httpsProxy": "http://proxy:3128", "noProxy": "169.254.169.254"},
            "region": "us-east-1",
        }
    }
    docs = helm.template(example_chart, values=values)
    strict_validate(docs, "1.33.0")
    spec = pod_spec(docs)
    sidecar = container(spec["initContainers"], SIDECAR)
    assert sidecar["image"] == f"registry.example/seller/app-sidecar@{digest}"
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/etc/entitlement-sidecar/keys"]["readOnly"] is True
    assert mounts["/etc/entitlement-sidecar/ca"]["readOnly"] is True
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["AWS_CA_BUNDLE"] == "/etc/entitlement-sidecar/ca/ca.crt"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["NO_PROXY"] == "169.254.169.254"
    assert env["ENTITLEMENT_REGION"] == "us-east-1"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["entitlement-status-keys"]["configMap"] == {"name": "seller-keys"}
    assert volumes["entitlement-status-ca"]["configMap"] == {"name": "corp-ca"}


def test_irsa_annotation_on_the_pods_service_account(helm: Helm, example_chart: Path) -> None:
    """The vendor pod's own ServiceAccount carries the IRSA role annotation."""
    arn = "arn:aws:iam::123456789012:role/seller-register-usage"
    docs = helm.template(example_chart, values={"serviceAccount": {"roleArn": arn}})
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}
    assert pod_spec(docs)["serviceAccountName"] == account["metadata"]["name"]


def test_sidecar_chart_alone_renders_nothing_but_notes(helm: Helm) -> None:
    """With the operator off, the sidecar chart installs no workload of its own."""
    assert helm.template(SIDECAR_CHART) == []


def notes(helm: Helm, chart: Path, *sets: str) -> str:
    """The NOTES.txt an install would print (client-side dry run: no cluster needed)."""
    args = ["install", "demo", str(chart), "--dry-run=client"]
    for item in sets:
        args += ["--set", item]
    out = helm.run(*args)
    return out.split("NOTES:", 1)[1]


@pytest.mark.parametrize("shape", ["native", "classic"], ids=["native", "classic"])
def test_notes_tell_how_to_see_the_entitlement_state(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """NOTES.txt shows `check --verify` in the sidecar, /status, and the status file."""
    text = notes(helm, example_chart, f"entitlement.sidecar.shape={shape}")
    assert f"in the {shape} shape" in text
    assert "-c entitlement-sidecar -- entitlement-sidecar check --verify" in text
    assert "curl -s localhost:9841/status" in text
    assert "cat /var/run/entitlement/status.json" in text
    assert "no eks.amazonaws.com/role-arn annotation" in text
    assert "node's IAM role" in text
    assert "EKS Pod Identity" in text
    assert "AWS Marketplace refuses" in text


def test_notes_for_init_shape_skip_the_running_sidecar(helm: Helm, example_chart: Path) -> None:
    """With the one-shot shape NOTES.txt shows the status file but no exec into a sidecar."""
    text = notes(helm, example_chart, "entitlement.sidecar.shape=init")
    assert "check --verify" not in text
    assert "cat /var/run/entitlement/status.json" in text


@pytest.mark.parametrize(("herd", "rendered"), [(1, None), (40, "40")], ids=["default", "forty"])
def test_the_herd_size_reaches_the_sidecar_only_when_above_one(
    helm: Helm, example_chart: Path, herd: int, rendered: str | None
) -> None:
    """`sidecar.herdSize` becomes ENTITLEMENT_HERD_SIZE; the default 1 renders nothing."""
    values = {"entitlement": {"sidecar": {"shape": "native", "herdSize": herd}}}
    sidecar = sidecar_of(pod_spec(helm.template(example_chart, values=values)), "native")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env.get("ENTITLEMENT_HERD_SIZE") == rendered
