"""Opt-in end-to-end test on a real cluster: the example app is Ready only when entitled.

Runs only with `pytest --with-e2e tests/e2e` and a reachable KUBECONFIG (kind, k3d, minikube or
EKS), never in CI here; without a reachable cluster `--with-e2e` stops the run, saying why. The
image named by E2E_IMAGE (default `entitlement-sidecar:0.1.0`, built with the permissive image
policy by `make image IMAGE_POLICY=permissive`, since the emulator's key reaches the sidecar
through a ConfigMap) must be pullable by the cluster, e.g. `kind load docker-image` first;
the example app's own image (nginx-unprivileged) is pulled from its public registry.
The Metering emulator runs in the test namespace from the same image; the sidecar reaches it
through AWS_ENDPOINT_URL_MARKETPLACE_METERING and trusts its public key through a key-ring
ConfigMap. Each test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.helm import Helm, fetch_tools, vendored_example

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("E2E_IMAGE", "entitlement-sidecar:0.1.0")
EMULATOR_PORT = 8080
ENTITLED, LAPSED = "prod-paid", "prod-lapsed"  # the emulator's default scenario


class Cluster:
    """kubectl and helm against the cluster in KUBECONFIG, inside one namespace."""

    def __init__(self, bin_dir: Path, namespace: str, home: Path) -> None:
        self.bin_dir, self.namespace, self.home = bin_dir, namespace, home

    def env(self) -> dict[str, str]:
        """KUBECONFIG plus isolated helm homes."""
        return {
            **Helm(binary=self.bin_dir / "helm", home=self.home).env(),
            "KUBECONFIG": os.environ["KUBECONFIG"],
        }

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run kubectl in the namespace; return stdout."""
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), "-n", self.namespace, *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def helm(self, *args: str) -> str:
        """Run helm in the namespace; return stdout."""
        proc = subprocess.run(
            [str(self.bin_dir / "helm"), "-n", self.namespace, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def apply(self, *docs: dict[str, Any]) -> None:
        """kubectl apply the documents."""
        self.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))


def emulator_objects(image: str) -> list[dict[str, Any]]:
    """Deployment + Service running `entitlement-sidecar emulator` with its public key in /keys."""
    labels = {"app.kubernetes.io/name": "metering-emulator"}
    hardened = {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # In a pod the emulator must listen on the pod IP, so it binds all interfaces there.
    args = ["emulator", "--host", "0.0.0.0", "--port", str(EMULATOR_PORT)]  # noqa: S104
    container = {
        "name": "emulator",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [*args, "--public-key-dir", "/keys"],
        "ports": [{"containerPort": EMULATOR_PORT}],
        "readinessProbe": {"tcpSocket": {"port": EMULATOR_PORT}, "periodSeconds": 2},
        "securityContext": hardened,
        "env": [{"name": "TMPDIR", "value": "/keys"}],
        "volumeMounts": [{"name": "keys", "mountPath": "/keys"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "metering-emulator", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "keys", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "metering-emulator"},
        "spec": {"selector": labels, "ports": [{"port": EMULATOR_PORT}]},
    }
    return [deployment, service]


def app_values(namespace: str, product_code: str, shape: str) -> dict[str, Any]:
    """example-app values pointing the sidecar at the in-namespace emulator."""
    repository, _, tag = IMAGE.rpartition(":")
    endpoint = f"http://metering-emulator.{namespace}.svc:{EMULATOR_PORT}"
    extra_env = {
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": endpoint,
        "AWS_ACCESS_KEY_ID": f"AKIDE2E{uuid.uuid4().hex[:8].upper()}",
        "AWS_SECRET_ACCESS_KEY": "e2e-not-a-secret",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return {
        "entitlement": {
            "productCode": product_code,
            "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
            "sidecar": {
                "shape": shape,
                "keyRing": {"configMap": "emulator-keys"},
                "extraEnv": [{"name": k, "value": v} for k, v in extra_env.items()],
            },
        }
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh namespace with the emulator running and its public key in a ConfigMap."""
    namespace = f"es-e2e-{uuid.uuid4().hex[:8]}"
    c = Cluster(fetch_tools(), namespace, tmp_path / "helm-home")
    c.kubectl("create", "namespace", namespace)
    try:
        c.apply(*emulator_objects(IMAGE))
        c.kubectl("rollout", "status", "deploy/metering-emulator", "--timeout=180s")
        pem = c.kubectl("exec", "deploy/metering-emulator", "--", "cat", "/keys/1.pem")
        assert "BEGIN PUBLIC KEY" in pem
        c.kubectl("create", "configmap", "emulator-keys", "--from-file=1.pem=/dev/stdin", stdin=pem)
        yield c
    finally:
        c.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def install(c: Cluster, workdir: Path, release: str, product_code: str, shape: str) -> None:
    """helm install the vendored example app (no --wait: the test watches readiness itself)."""
    chart = vendored_example(Helm(binary=c.bin_dir / "helm", home=c.home), workdir)
    values = workdir / f"{release}.json"
    values.write_text(json.dumps(app_values(c.namespace, product_code, shape)))
    c.helm("install", release, str(chart), "--values", str(values))


def pod_conditions(c: Cluster, release: str) -> dict[str, str]:
    """Condition type -> status of the release's pod (empty while none exists)."""
    out = c.kubectl("get", "pods", "-l", f"app.kubernetes.io/instance={release}", "-o", "json")
    items = json.loads(out)["items"]
    if not items:
        return {}
    return {x["type"]: x["status"] for x in items[0]["status"].get("conditions", [])}


def wait_ready(c: Cluster, release: str, timeout: float) -> bool:
    """True once the release's pod is Ready, False if it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pod_conditions(c, release).get("Ready") == "True":
            return True
        time.sleep(2)
    return False


@pytest.mark.parametrize("shape", ["native", "classic", "init"], ids=["native", "classic", "init"])
def test_entitled_pod_becomes_ready_and_verifies(
    cluster: Cluster, tmp_path: Path, shape: str
) -> None:
    """With an entitled product code the pod becomes Ready and `check --verify` passes."""
    install(cluster, tmp_path, "entitled", ENTITLED, shape)
    assert wait_ready(cluster, "entitled", 180), pod_conditions(cluster, "entitled")
    selector = "app.kubernetes.io/instance=entitled"
    pod = cluster.kubectl("get", "pods", "-l", selector, "-o", "name").split()[0]
    status = json.loads(
        cluster.kubectl("exec", pod, "-c", "app", "--", "cat", "/var/run/entitlement/status.json")
    )
    assert status["entitled"] is True
    if shape != "init":
        cluster.kubectl(
            "exec",
            pod,
            "-c",
            "entitlement-sidecar",
            "--",
            "entitlement-sidecar",
            "check",
            "--verify",
        )


@pytest.mark.parametrize("shape", ["native", "classic"], ids=["native", "classic"])
def test_not_entitled_pod_never_becomes_ready(cluster: Cluster, tmp_path: Path, shape: str) -> None:
    """With a lapsed product code the pod stays unready (native: the app never starts), and the
    sidecar says why: denied with CustomerNotEntitledException, not merely not ready."""
    install(cluster, tmp_path, "lapsed", LAPSED, shape)
    assert not wait_ready(cluster, "lapsed", 60), "a not-entitled pod became Ready"
    out = cluster.kubectl("get", "pods", "-l", "app.kubernetes.io/instance=lapsed", "-o", "json")
    pod = json.loads(out)["items"][0]
    status = json.loads(
        cluster.kubectl(
            "exec",
            pod["metadata"]["name"],
            "-c",
            "entitlement-sidecar",
            "--",
            "cat",
            "/var/run/entitlement/status.json",
        )
    )
    assert (status["state"], status["reason"]) == ("denied", "CustomerNotEntitledException")
    if shape == "native":
        started = [s for s in pod["status"].get("containerStatuses", []) if s["name"] == "app"]
        assert not any(s.get("state", {}).get("running") for s in started)
