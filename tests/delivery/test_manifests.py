"""Plain manifests: generated from the charts, kustomize-ready, lint-clean and valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.delivery.helm import EXAMPLE_CHART, OPERATOR_CHART, REPO, SIDECAR_CHART

MANIFESTS = REPO / "manifests" / "kubernetes"
BASES = ("operator", "example-app")
# The project's yamllint rules for plain YAML: helm's toYaml does not indent sequences, and
# chart files conventionally start without `---`; everything else is yamllint's default.
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 120, allow-non-breakable-inline-mappings: true},"
    " document-start: disable, indentation: {spaces: 2, indent-sequences: whatever}}}"
)


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file below root."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def rendered(tools_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifests re-rendered from the charts into a temporary directory."""
    out = tmp_path_factory.mktemp("manifests")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_manifests.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_committed_manifests_match_the_charts(rendered: Path) -> None:
    """manifests/kubernetes is exactly what `make manifests` renders now (no drift)."""
    committed, fresh = tree(MANIFESTS), tree(rendered)
    assert sorted(fresh) == sorted(committed), "files added or removed: run `make manifests`"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert drifted == [], f"drifted from the charts, run `make manifests`: {drifted}"


@pytest.mark.parametrize("base", BASES, ids=BASES)
def test_kustomize_builds_and_validates(tools_bin: Path, base: str) -> None:
    """`kubectl kustomize` builds each base and every built-in object passes the strict schema."""
    out = subprocess.run(
        [str(tools_bin / "kubectl"), "kustomize", str(MANIFESTS / base)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
    if base == "operator":
        namespaced = [d for d in docs if "namespace" in d["metadata"]]
        assert {d["metadata"]["namespace"] for d in namespaced} == {"entitlement-system"}
        kinds = {d["kind"] for d in docs}
        assert "Deployment" in kinds
        assert "ClusterRole" in kinds


def test_plain_yaml_files_pass_yamllint() -> None:
    """yamllint (strict) passes on the manifests and the charts' plain YAML: values, Chart.yaml,
    the CRD and the rule files (not templates)."""
    files = [str(p) for p in sorted(MANIFESTS.rglob("*.yaml"))]
    for chart in (SIDECAR_CHART, OPERATOR_CHART, EXAMPLE_CHART):
        files += [str(chart / "values.yaml"), str(chart / "Chart.yaml")]
        files += [str(p) for p in sorted((chart / "files").glob("*.yaml"))]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "yamllint"), "-s", "-d", YAMLLINT_CONFIG, *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_readme_kustomize_example_builds(tools_bin: Path, tmp_path: Path) -> None:
    """The README's kustomization example builds and sets the product code, image and IRSA role."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("# your kustomization.yaml\n", 1)[1].split("```", 1)[0]
    overlay = tmp_path / "overlays" / "prod"
    overlay.mkdir(parents=True)
    (tmp_path / "manifests").symlink_to(REPO / "manifests")
    (overlay / "kustomization.yaml").write_text(block)
    out = subprocess.run(
        [str(tools_bin / "kubectl"), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    deployment = docs[("Deployment", "entitlement-sidecar-operator")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ENTITLEMENT_OPERATOR_PRODUCT_CODE"] == "<product code>"
    assert env["ENTITLEMENT_OPERATOR_DIMENSIONS"] == "nodes,vcpu_hours"
    assert container["image"] == "<your ECR repository>:0.1.0"  # the operator image, renamed
    account = docs[("ServiceAccount", "entitlement-sidecar-operator")]
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
