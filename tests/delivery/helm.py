"""A thin, typed wrapper over the real helm binary for the chart tests.

Renders are cached per (chart, Kubernetes version, values) for the whole session, so every
assertion about one rendering parses helm's output once. Helm's cache, config and data homes point
at a temporary directory: the tests never read or write the user's helm setup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SIDECAR_CHART = REPO / "charts" / "entitlement-sidecar"
OPERATOR_CHART = REPO / "charts" / "entitlement-operator"
EXAMPLE_CHART = REPO / "charts" / "example-app"
CRD_FILE = OPERATOR_CHART / "files" / "hourlyusages.metering.entitlement-sidecar.io.yaml"
KUBE_VERSIONS = ("1.29.0", "1.33.0", "1.37.0")
SHAPES = ("native", "classic", "init")

Doc = dict[str, Any]


class HelmError(Exception):
    """helm exited non-zero; `stderr` holds its message."""

    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed: {stderr.strip()}")
        self.stderr = stderr


@dataclass
class Helm:
    """The helm binary with isolated homes, and a render cache."""

    binary: Path
    home: Path
    _cache: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment for helm: isolated homes, nothing inherited that could change output."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(self, *args: str) -> str:
        """Run helm, return stdout; raise HelmError with stderr on failure."""
        proc = subprocess.run(
            [str(self.binary), *args], env=self.env(), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise HelmError(list(args), proc.stderr)
        return proc.stdout

    def template_text(
        self,
        chart: Path,
        *,
        kube_version: str = "1.33.0",
        values: dict[str, Any] | None = None,
        namespace: str = "default",
        release: str = "demo",
        extra: tuple[str, ...] = (),
    ) -> str:
        """`helm template` output (cached), values passed as a JSON values file."""
        key = json.dumps([str(chart), kube_version, values, namespace, release, extra])
        if key not in self._cache:
            args = ["template", release, str(chart), "--kube-version", kube_version]
            args += ["--namespace", namespace, *extra]
            if values:
                vfile = self.home / f"values-{len(self._cache)}.json"
                vfile.write_text(json.dumps(values))
                args += ["--values", str(vfile)]
            self._cache[key] = self.run(*args)
        return self._cache[key]

    def template(self, chart: Path, **kwargs: Any) -> list[Doc]:
        """Rendered documents, parsed (empty documents dropped)."""
        return [d for d in yaml.safe_load_all(self.template_text(chart, **kwargs)) if d]


def fetch_tools(*, helm3: bool = False) -> Path:
    """Directory of the pinned helm and kubectl (scripts/fetch_helm.py fetches them once)."""
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_helm.py"), *(["--helm3"] if helm3 else [])],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).parent


def vendored_example(helm: Helm, workdir: Path) -> Path:
    """A copy of charts/example-app with the sidecar chart vendored by `helm dependency update`."""
    charts = workdir / "charts"
    shutil.copytree(SIDECAR_CHART, charts / "entitlement-sidecar")
    shutil.copytree(EXAMPLE_CHART, charts / "example-app", ignore=shutil.ignore_patterns("charts"))
    chart = charts / "example-app"
    helm.run("dependency", "update", str(chart))
    return chart


# What an EKS add-on package leaves out: the `helm test` Pods (AWS's pre-check refuses any file
# that names a Helm hook). The README tells sellers to add this line to `.helmignore` for the
# add-on build; `helm package` then skips the directory.
ADDON_HELMIGNORE = "templates/tests/"


def for_addon(chart: Path, target: Path) -> Path:
    """A copy of `chart` at `target` prepared as the README says for an add-on build."""
    shutil.copytree(chart, target, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    ignore = target / ".helmignore"
    ignore.write_text(
        ignore.read_text() + f"\n# EKS add-on build: no Helm hooks\n{ADDON_HELMIGNORE}\n"
    )
    return target


def vendored_addon(helm: Helm, workdir: Path, values: dict[str, Any]) -> Path:
    """A vendor chart shipped as an EKS add-on: example-app plus the operator chart as a second
    local dependency (alias `metering`), with `values` merged into its values.yaml (AWS's
    validator renders a chart with its own defaults only), dependencies vendored."""
    charts = workdir / "charts"
    for source in (SIDECAR_CHART, OPERATOR_CHART):
        for_addon(source, charts / source.name)
    chart = for_addon(EXAMPLE_CHART, charts / "addon-app")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["name"] = "addon-app"
    meta["dependencies"].append(
        {
            "name": OPERATOR_CHART.name,
            "version": yaml.safe_load((OPERATOR_CHART / "Chart.yaml").read_text())["version"],
            "repository": f"file://../{OPERATOR_CHART.name}",
            "alias": "metering",
            "condition": "metering.enabled",
        }
    )
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    (chart / "values.yaml").write_text(yaml.safe_dump(merged(defaults, values), sort_keys=False))
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["metering"] = {"type": "object", "description": "The operator chart."}
    (chart / "values.schema.json").write_text(json.dumps(schema))
    helm.run("dependency", "update", str(chart))
    return chart


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, maps recursively (as Helm merges values)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """The one document of that kind (and name)."""
    hits = [
        d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def pod_spec(docs: list[Doc]) -> Doc:
    """The pod spec of the one Deployment."""
    spec: Doc = find(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(containers: list[Doc], name: str) -> Doc:
    """The container with that name."""
    hits = [c for c in containers if c["name"] == name]
    assert len(hits) == 1, f"expected one container {name}, found {[c['name'] for c in containers]}"
    return hits[0]
