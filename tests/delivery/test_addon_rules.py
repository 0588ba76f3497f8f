"""EKS add-on rules: both charts (and a vendor chart built on them) pass AWS's add-on pre-checks.

AWS Marketplace can deliver a container product as an EKS add-on. Its pre-launch checks are
published as the aws-samples "Addons Transformer for Amazon EKS" CLI; this module implements what
`src/services/validate.ts` checks (read at commits 0208bcd and 4ec3289 of that repository), with
its error codes:

- E505 `helm lint --strict --with-subcharts <chart>` passes (each subchart is linted on its own
  defaults, so both charts must lint clean without a product code).
- E506 `helm template <name> <chart> --set k8version=<v> --kube-version <v> --namespace <ns>
  --include-crds --no-hooks` succeeds for every supported Kubernetes version (the charts' schemas
  accept the `k8version` key it sets).
- E501 no `.Capabilities`: the tool greps for it. Our only use is one helper that decides the
  sidecar's shape when no `sidecar.minKubernetesVersion` is declared; with one declared (or an
  explicit classic/init shape) the rendered output is byte-identical for every cluster version and
  API set, which is what the rule protects.
- E502 no Helm hooks (`helm.sh/hook`, `.Hooks`) in any file of the chart.
- E503 every dependency is local (`file://`, vendored into the package).
- E504 `.Release` only as `.Release.Name` and `.Release.Namespace` (the labels say
  `app.kubernetes.io/managed-by: Helm` instead of `.Release.Service`).
- E507 no `lookup` function.

The tool's greps are looser than its intent (for example `grep -Rile ".Capabilities"` also matches
a `capabilities:` key of a securityContext, and `-Rilen` makes `n` the pattern); the checks here
follow the intent, on every file of every chart as Helm packages it.
"""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.delivery.helm import (
    EXAMPLE_CHART,
    KUBE_VERSIONS,
    OPERATOR_CHART,
    SIDECAR_CHART,
    Doc,
    Helm,
    for_addon,
    vendored_addon,
)

ADDON_NAMESPACE = "acme-product"
# What a seller ships as the add-on's defaults: the sidecar's declared minimum Kubernetes version
# (so nothing depends on the cluster) and the operator for its custom dimensions.
ADDON_VALUES: dict[str, Any] = {
    "entitlement": {"sidecar": {"minKubernetesVersion": "1.29"}},
    "metering": {
        "enabled": True,
        "productCode": "exampleproductcode0000001",
        "dimensions": ["nodes"],
    },
}
# The one helper allowed to read `.Capabilities` (see the module docstring).
CAPABILITIES_HELPER = "entitlement-sidecar.kubeVersion"
RELEASE_FIELDS = {"Name", "Namespace"}


def violations(name: str, text: str) -> list[str]:
    """The add-on rules one file breaks, as `file:line: rule` strings."""
    found = []
    helper = None
    for number, line in enumerate(text.splitlines(), start=1):
        define = re.search(r'define\s+"([^"]+)"', line)
        helper = define.group(1) if define else helper
        where = f"{name}:{number}"
        if re.search(r"helm\.sh/hook|\.Hooks\b", line, re.IGNORECASE):
            found.append(f"{where}: Helm hook (E502)")
        for field in re.findall(r"\.Release\.(\w+)", line):
            if field not in RELEASE_FIELDS:
                found.append(f"{where}: .Release.{field} (E504)")
        for action in re.findall(r"\{\{.*?\}\}", line):
            if re.search(r"(^|[\s(|])lookup\b", action.strip("{}- ")):
                found.append(f"{where}: lookup (E507)")
        if ".Capabilities" in line and helper != CAPABILITIES_HELPER:
            found.append(f"{where}: .Capabilities outside {CAPABILITIES_HELPER} (E501)")
    return found


def packaged_files(helm: Helm, chart: Path, out: Path) -> dict[str, str]:
    """Every text file of the chart as `helm package` ships it (subcharts included)."""
    package = helm.run("package", str(chart), "--destination", str(out)).split(": ")[-1]
    files = {}
    with tarfile.open(package.strip()) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None and not member.name.endswith(".tgz"):
                files[member.name] = extracted.read().decode()
    return files


@pytest.fixture(scope="module")
def addon(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example vendor chart packaged as an add-on, with the operator chart embedded."""
    return vendored_addon(helm, tmp_path_factory.mktemp("addon"), ADDON_VALUES)


def render(helm: Helm, chart: Path, version: str, *extra: str) -> list[Doc]:
    """The chart rendered exactly as AWS's validator renders it (E506)."""
    args = ("--set", f"k8version={version}", "--include-crds", "--no-hooks", *extra)
    return helm.template(
        chart, kube_version=version, namespace=ADDON_NAMESPACE, release="acme", extra=args
    )


BAD_SNIPPETS = [
    ("metadata:\n  annotations:\n    helm.sh/hook: pre-install\n", "Helm hook"),
    ("{{- range .Hooks }}{{ end }}", "Helm hook"),
    ("managed-by: {{ .Release.Service }}", ".Release.Service"),
    ("rev: {{ .Release.Revision }}", ".Release.Revision"),
    ('{{ $s := lookup "v1" "Secret" "ns" "x" }}', "lookup"),
    ('{{- if (lookup "v1" "Namespace" "" "x") }}{{ end }}', "lookup"),
    ('{{ if .Capabilities.APIVersions.Has "x/v1" }}{{ end }}', ".Capabilities outside"),
]


@pytest.mark.parametrize(
    ("text", "rule"),
    BAD_SNIPPETS,
    ids=[
        "hook-annotation",
        "hooks-object",
        "release-service",
        "release-revision",
        "lookup",
        "lookup-in-parens",
        "capabilities",
    ],
)
def test_the_rule_checker_catches_each_rule(text: str, rule: str) -> None:
    """Each rule is caught on a template that breaks it (the checker is not vacuous)."""
    assert [v for v in violations("t.yaml", text) if rule in v]


def test_the_rule_checker_passes_the_allowed_forms() -> None:
    """`.Release.Name`, `.Release.Namespace`, the word lookup in prose and the one helper pass."""
    text = (
        "name: {{ .Release.Name }}\nnamespace: {{ .Release.Namespace }}\n"
        "# the operator needs no lookup of Secrets\n"
        f'{{{{- define "{CAPABILITIES_HELPER}" -}}}}\n{{{{ .Capabilities.KubeVersion.Version }}}}\n'
    )
    assert violations("t.yaml", text) == []


@pytest.mark.parametrize(
    "chart", [SIDECAR_CHART, OPERATOR_CHART, EXAMPLE_CHART], ids=lambda c: c.name
)
def test_every_file_of_every_chart_follows_the_addon_rules(
    helm: Helm, example_chart: Path, tmp_path: Path, chart: Path
) -> None:
    """No file that Helm packages for an add-on (templates/tests/ left out, as the README says)
    uses hooks, lookup, `.Release` fields other than Name and Namespace, or `.Capabilities`
    outside the one declared-version helper."""
    source = example_chart if chart == EXAMPLE_CHART else chart  # vendored: packages need deps
    prepared = for_addon(source, tmp_path / "chart" / chart.name)
    if chart == EXAMPLE_CHART:
        shutil.copytree(source / "charts", prepared / "charts")
    files = packaged_files(helm, prepared, tmp_path)
    assert not any("/templates/tests/" in name for name in files)
    assert any(name.endswith("values.yaml") for name in files)
    broken = [v for name, text in sorted(files.items()) for v in violations(name, text)]
    assert broken == []


def test_addon_package_follows_the_rules_with_its_subcharts(
    helm: Helm, addon: Path, tmp_path: Path
) -> None:
    """The packaged add-on, with both charts vendored inside it, breaks no rule either."""
    files = packaged_files(helm, addon, tmp_path)
    subcharts = sorted((addon / "charts").glob("*.tgz"))
    assert [p.name.rsplit("-", 1)[0] for p in subcharts] == [
        "entitlement-operator",
        "entitlement-sidecar",
    ]
    for subchart in subcharts:
        with tarfile.open(subchart) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    files[member.name] = extracted.read().decode()
    broken = [v for name, text in sorted(files.items()) for v in violations(name, text)]
    assert broken == []


def test_dependencies_are_local(helm: Helm, addon: Path) -> None:
    """Every dependency is a local `file://` chart vendored into the package (E503); the two
    charts themselves have none."""
    listing = helm.run("dependency", "list", str(addon)).strip().splitlines()[1:]
    rows = [line.split() for line in listing if line.strip()]
    assert [row[0] for row in rows] == ["entitlement-sidecar", "entitlement-operator"]
    assert all(row[2].startswith("file://") and row[3] == "ok" for row in rows), rows
    for chart in (SIDECAR_CHART, OPERATOR_CHART):
        assert "dependencies" not in yaml.safe_load((chart / "Chart.yaml").read_text())


def test_lint_with_subcharts_passes(helm: Helm, addon: Path) -> None:
    """`helm lint --strict --with-subcharts` passes on the add-on and each vendored chart (E505)."""
    out = helm.run("lint", "--strict", "--with-subcharts", str(addon))
    assert "3 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
def test_validator_template_command_renders_valid_objects(
    helm: Helm, addon: Path, version: str
) -> None:
    """AWS's template command succeeds on the add-on for each supported version (E506), and what
    it renders passes that version's strict schema."""
    docs = render(helm, addon, version)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "CustomResourceDefinition", "ServiceAccount"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("chart", [SIDECAR_CHART], ids=["entitlement-sidecar"])
@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
def test_validator_template_command_on_the_sidecar_chart_alone(
    helm: Helm, chart: Path, version: str
) -> None:
    """The sidecar chart alone passes the template command on its defaults (it renders nothing)."""
    assert render(helm, chart, version) == []


def test_addon_output_does_not_depend_on_the_cluster(helm: Helm, addon: Path) -> None:
    """With a declared minimum Kubernetes version nothing rendered depends on `.Capabilities`:
    every cluster version and API set gives the same objects (E501)."""
    first = render(helm, addon, KUBE_VERSIONS[0])
    assert first[0]  # something was rendered
    for version in KUBE_VERSIONS[1:]:
        assert render(helm, addon, version) == first
    apis = ("--api-versions", "monitoring.coreos.com/v1")
    assert render(helm, addon, KUBE_VERSIONS[-1], *apis) == first


@pytest.mark.parametrize("shape", ["classic", "init"], ids=["classic", "init"])
def test_explicit_shapes_do_not_read_the_cluster_version(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """An explicit classic or init shape renders the same on every cluster version."""
    values = {"entitlement": {"sidecar": {"shape": shape}}}
    renders = [helm.template(example_chart, kube_version=v, values=values) for v in KUBE_VERSIONS]
    assert renders[0]
    assert all(r == renders[0] for r in renders)


@pytest.mark.parametrize(
    ("declared", "cluster", "shape"),
    [("1.28", "1.37.0", "classic"), ("1.29", "1.25.0", "native"), ("1.33.2", "1.28.0", "native")],
    ids=["declared-1.28", "declared-1.29", "declared-1.33.2"],
)
def test_declared_minimum_decides_auto(
    helm: Helm, example_chart: Path, declared: str, cluster: str, shape: str
) -> None:
    """`auto` follows the declared minimum, not the cluster the chart is rendered for."""
    values = {"entitlement": {"sidecar": {"minKubernetesVersion": declared}}}
    docs = helm.template(example_chart, kube_version=cluster, values=values)
    spec = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    where = "initContainers" if shape == "native" else "containers"
    assert "entitlement-sidecar" in [c["name"] for c in spec.get(where, [])]


def test_native_below_the_declared_minimum_is_refused(helm: Helm, example_chart: Path) -> None:
    """Forcing native with a declared minimum below 1.29 fails naming the declared version."""
    values = {"entitlement": {"sidecar": {"shape": "native", "minKubernetesVersion": "1.28"}}}
    with pytest.raises(Exception, match=r"minKubernetesVersion is 1\.28"):
        helm.template(example_chart, kube_version="1.37.0", values=values)
