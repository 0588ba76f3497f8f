"""The operator chart: one Recreate replica, IRSA, least-privilege RBAC, the ledger CRD."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.delivery.helm import (
    CRD_FILE,
    KUBE_VERSIONS,
    OPERATOR_CHART,
    REPO,
    Doc,
    Helm,
    HelmError,
    find,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/seller-meter-usage"
OPERATOR: dict[str, Any] = {
    "productCode": "exampleproductcode0000001",
    "dimensions": ["vcpu_hours", "nodes"],
    "tagKeys": ["team"],
    "serviceAccount": {"roleArn": ROLE_ARN},
}
NAME = "demo-entitlement-operator"
Rules = dict[tuple[str, str], set[str]]


def operator_values(**values: Any) -> dict[str, Any]:
    """The operator's test values with some keys replaced."""
    return {**OPERATOR, **values}


def design_access_table() -> Rules:
    """(apiGroup, resource) -> verbs, parsed from docs/design.md "Operator API access"."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Operator API access", 1)[1].split("\n## ", 1)[0]
    table: Rules = defaultdict(set)
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in {"resource", ""} or set(cells[0]) <= {"-"}:
            continue
        verbs = {v.strip() for v in cells[1].split("(")[0].split(",") if v.strip()}
        group = ""
        for item in (i.strip() for i in cells[0].split(",")):
            if "/" in item:
                group, _, resource = item.partition("/")
                group = "" if group == "core" else group
            else:
                resource = item
            table[(group, resource)] |= verbs
    return dict(table)


def rendered_rules(docs: list[Doc]) -> Rules:
    """(apiGroup, resource) -> verbs over every Role and ClusterRole rendered."""
    rules: Rules = defaultdict(set)
    for doc in docs:
        if doc["kind"] not in {"Role", "ClusterRole"}:
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    rules[(group, resource)] |= set(rule["verbs"])
    return dict(rules)


@pytest.fixture(scope="module")
def docs(helm: Helm) -> list[Doc]:
    """The chart rendered with the operator enabled (cluster-wide watch)."""
    return helm.template(OPERATOR_CHART, values=OPERATOR)


@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [
        OPERATOR,
        operator_values(namespaces=["team-a", "team-b"], ledgerNamespace="billing"),
        operator_values(serviceMonitor={"enabled": True}),
    ],
    ids=["cluster-wide", "namespaced", "service-monitor"],
)
def test_operator_renders_valid_kubernetes_with_crd(
    helm: Helm, version: str, values: dict[str, Any]
) -> None:
    """Every built-in document, the CRD included, passes the strict schema of each version."""
    docs = helm.template(OPERATOR_CHART, kube_version=version, values=values)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "Service", "Role", "RoleBinding"} <= kinds
    assert "CustomResourceDefinition" in kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a custom resource: no built-in schema to check against
        kubernetes_validate.validate(doc, version, strict=True)


def test_operator_is_one_replica_recreated(docs: list[Doc]) -> None:
    """The operator Deployment runs one replica and never two at once (Recreate)."""
    deployment = find(docs, "Deployment", NAME)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["operator"]
    assert pod["serviceAccountName"] == NAME


def test_operator_settings_map_to_env(docs: list[Doc]) -> None:
    """Operator values become ENTITLEMENT_OPERATOR_* variables with the documented meaning."""
    container = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ENTITLEMENT_OPERATOR_PRODUCT_CODE"] == "exampleproductcode0000001"
    assert env["ENTITLEMENT_OPERATOR_DIMENSIONS"] == "vcpu_hours,nodes"
    assert env["ENTITLEMENT_OPERATOR_TAG_KEYS"] == "team"
    assert env["ENTITLEMENT_OPERATOR_LEDGER_NAMESPACE"] == "default"
    assert env["ENTITLEMENT_OPERATOR_SEND_JITTER_SECONDS"] == "300"
    assert env["ENTITLEMENT_OPERATOR_SEND_ZERO"] == "false"
    assert env["ENTITLEMENT_OPERATOR_DRY_RUN"] == "false"
    assert env["ENTITLEMENT_OPERATOR_METRICS_PORT"] == "9842"
    assert "ENTITLEMENT_OPERATOR_NAMESPACES" not in env
    assert container["ports"] == [{"name": "metrics", "containerPort": 9842, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}


def test_design_doc_settings_are_all_mapped(helm: Helm) -> None:
    """Every operator setting named in docs/design.md can be set from the chart."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Operator settings", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`([A-Z][A-Z_]*[A-Z])`", section)) - {"ENTITLEMENT_OPERATOR"}
    names -= {"POD_NAMESPACE"}  # the default of LEDGER_NAMESPACE, from the downward API
    assert {"PRODUCT_CODE", "DIMENSIONS", "LOG_FORMAT"} <= names, "design section not parsed"
    values = {**operator_values(namespaces=["a"]), "region": "eu-west-1"}
    docs = helm.template(OPERATOR_CHART, values=values)
    container = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"][0]
    rendered = {e["name"] for e in container["env"]}
    assert set() == {n for n in names if f"ENTITLEMENT_OPERATOR_{n}" not in rendered}


def test_operator_container_is_hardened(docs: list[Doc]) -> None:
    """The operator runs as 65532 with a read-only root, no capabilities, RuntimeDefault seccomp."""
    pod = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]
    context = pod["containers"][0]["securityContext"]
    assert context["runAsUser"] == 65532
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_service_account_carries_the_irsa_role(docs: list[Doc]) -> None:
    """The operator's ServiceAccount carries the eks.amazonaws.com/role-arn annotation."""
    account = find(docs, "ServiceAccount", NAME)
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}


def test_rbac_grants_exactly_the_design_access_list(docs: list[Doc]) -> None:
    """The rendered RBAC grants exactly the verbs of docs/design.md, resource by resource."""
    table = design_access_table()
    assert ("apps", "deployments") in table, "design table not parsed"
    assert table == rendered_rules(docs)


def test_rbac_has_no_wildcards_or_secrets(docs: list[Doc]) -> None:
    """No rule uses `*` and none touches Secrets."""
    for doc in docs:
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], rule
            assert "secrets" not in rule["resources"], rule


@pytest.mark.parametrize(
    ("release", "lease"),
    [("demo", NAME), ("other", "other-entitlement-operator")],
    ids=["demo", "other"],
)
def test_lease_updates_are_limited_to_the_release_lease(
    helm: Helm, release: str, lease: str
) -> None:
    """get/patch on Leases are restricted to the release's own Lease, the one the operator is
    told to use; only create is unrestricted (two releases in one namespace never share it)."""
    docs = helm.template(OPERATOR_CHART, values=OPERATOR, release=release)
    role = find(docs, "Role", f"{release}-entitlement-operator-leader")
    for rule in role["rules"]:
        if rule["verbs"] == ["create"]:
            assert "resourceNames" not in rule
        else:
            assert rule["resourceNames"] == [lease]
            assert set(rule["verbs"]) == {"get", "patch"}
    deployment = find(docs, "Deployment", f"{release}-entitlement-operator")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ENTITLEMENT_OPERATOR_LEASE_NAME"] == lease


def test_rbac_rules_explain_themselves() -> None:
    """Every RBAC rule in the template has a comment saying why it exists."""
    text = (OPERATOR_CHART / "templates" / "rbac.yaml").read_text()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith("- apiGroups:"):
            above = lines[index - 1].strip()
            assert above.startswith("#") or lines[index - 4].strip().startswith("#"), line


def test_cluster_wide_watch_uses_a_cluster_role(docs: list[Doc]) -> None:
    """Without operator.namespaces, workloads are read through one ClusterRole."""
    role = find(docs, "ClusterRole", f"{NAME}-workloads")
    binding = find(docs, "ClusterRoleBinding", f"{NAME}-workloads")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "default"}]


def test_namespaced_watch_uses_roles_per_namespace(helm: Helm) -> None:
    """With operator.namespaces, one Role and RoleBinding per namespace and no ClusterRole."""
    values = operator_values(namespaces=["team-a", "team-b"], ledgerNamespace="billing")
    docs = helm.template(OPERATOR_CHART, values=values)
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    workloads = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-workloads")
    ]
    assert {"team-a", "team-b"} == {d["metadata"]["namespace"] for d in workloads}
    ledger = find(docs, "Role", f"{NAME}-ledger")
    assert ledger["metadata"]["namespace"] == "billing"
    assert find(docs, "Role", f"{NAME}-leader")["metadata"]["namespace"] == "default"
    assert design_access_table() == rendered_rules(docs)
    container = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ENTITLEMENT_OPERATOR_NAMESPACES"] == "team-a,team-b"
    assert env["ENTITLEMENT_OPERATOR_LEDGER_NAMESPACE"] == "billing"


def test_service_monitor_is_off_by_default_and_targets_metrics(helm: Helm, docs: list[Doc]) -> None:
    """No ServiceMonitor by default; when enabled it scrapes the metrics port's /metrics."""
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    service = find(docs, "Service", f"{NAME}-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    values = operator_values(serviceMonitor={"enabled": True})
    enabled = helm.template(OPERATOR_CHART, values=values)
    monitor = find(enabled, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "60s"}
    ]


def test_operator_image_defaults_to_the_app_version_and_can_be_pinned(helm: Helm) -> None:
    """The operator image defaults to the operator target at the appVersion; a digest pins it."""
    digest = "sha256:" + "b" * 64
    values = operator_values(image={"repository": "seller/operator", "digest": digest})
    docs = helm.template(OPERATOR_CHART, values=values)
    container = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"seller/operator@{digest}"
    default = helm.template(OPERATOR_CHART, values=OPERATOR)
    container = find(default, "Deployment", NAME)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "entitlement-sidecar-operator:0.1.0"


def test_ledger_crd_matches_the_design_names() -> None:
    """The shipped CRD is HourlyUsage v1alpha1, namespaced, short name hu, status subresource."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "hourlyusages.metering.entitlement-sidecar.io"
    assert spec["group"] == "metering.entitlement-sidecar.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "HourlyUsage"
    assert spec["names"]["plural"] == "hourlyusages"
    assert "hu" in spec["names"]["shortNames"]
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_ledger_crd_schema_and_printer_columns_point_at_real_fields() -> None:
    """Every printer column's jsonPath names a field the structural schema declares."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    [version] = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["type"] == "object"
    assert {"spec", "status"} <= set(schema["properties"])
    columns = version["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert {"Dimension", "Hour", "Phase"} <= set(names)
    for column in columns:
        path = column["jsonPath"].lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = schema
        for part in path:
            assert part in node.get("properties", {}), column
            node = node["properties"][part]


def test_crd_is_rendered_from_the_file_with_chart_labels(helm: Helm) -> None:
    """The CRD is a template (upgraded by `helm upgrade`) built from the shipped file, labelled
    like every other object and kept on uninstall unless `crds.keep` is off."""
    docs = helm.template(OPERATOR_CHART, values=OPERATOR)
    crd = find(docs, "CustomResourceDefinition")
    shipped = yaml.safe_load(CRD_FILE.read_text())
    assert crd["spec"] == shipped["spec"]
    assert crd["metadata"]["labels"] == find(docs, "Deployment", NAME)["metadata"]["labels"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    off = helm.template(OPERATOR_CHART, values=operator_values(crds={"install": False}))
    assert [d for d in off if d["kind"] == "CustomResourceDefinition"] == []
    loose = helm.template(OPERATOR_CHART, values=operator_values(crds={"keep": False}))
    assert "annotations" not in find(loose, "CustomResourceDefinition")["metadata"]


def test_scheduling_pull_secrets_and_extras_reach_the_operator_pod(helm: Helm) -> None:
    """nodeSelector, tolerations, affinity, pull secrets, extra env, labels and CA reach the pod."""
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}
                ]
            }
        }
    }
    values = {
        **operator_values(
            nodeSelector={"kubernetes.io/os": "linux"},
            tolerations=[{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
            affinity=affinity,
            priorityClassName="system-cluster-critical",
            extraEnv=[{"name": "EXTRA", "value": "1"}],
            podLabels={"team": "billing"},
        ),
        "imagePullSecrets": [{"name": "ecr"}],
        "caBundle": {"configMap": "corp-ca", "key": "bundle.pem"},
        "commonLabels": {"owner": "seller"},
    }
    docs = helm.template(OPERATOR_CHART, values=values)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
        assert doc["metadata"]["labels"]["owner"] == "seller"
    template = find(docs, "Deployment", NAME)["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "ops"
    assert pod["affinity"] == affinity
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "ecr"}]
    assert template["metadata"]["labels"]["team"] == "billing"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["EXTRA"] == "1"
    assert env["AWS_CA_BUNDLE"] == "/etc/entitlement-sidecar/ca/bundle.pem"
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]


def test_existing_service_account_needs_a_name(helm: Helm) -> None:
    """With serviceAccount.create=false the chart requires a name instead of binding `default`."""
    values = operator_values(serviceAccount={"create": False})
    with pytest.raises(HelmError, match=r"/serviceAccount.*name"):
        helm.template(OPERATOR_CHART, values=values)
    with pytest.raises(HelmError, match=r"serviceAccount\.name is required"):
        helm.template(OPERATOR_CHART, values=values, extra=("--skip-schema-validation",))
    named = operator_values(serviceAccount={"create": False, "name": "billing-operator"})
    docs = helm.template(OPERATOR_CHART, values=named)
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]
    subjects = [s for d in docs if d["kind"].endswith("Binding") for s in d["subjects"]]
    assert {s["name"] for s in subjects} == {"billing-operator"}
    pod = find(docs, "Deployment", NAME)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "billing-operator"
