"""The `helm test` doctor Pods: the sidecar's and the operator's own containers running `doctor`.

Rendered by the real helm binary, checked against the Kubernetes schemas, compared with the
container they diagnose, and then run for real: the rendered args and env started as a local
process against the emulator (a stand-in for the kubelet, as in test_rendered_sidecar).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env
from tests.delivery.helm import (
    KUBE_VERSIONS,
    OPERATOR_CHART,
    Doc,
    Helm,
    container,
    find,
    pod_spec,
)

SIDECAR_VALUES: dict[str, Any] = {"entitlement": {"productCode": "prod-paid"}}
OPERATOR_VALUES: dict[str, Any] = {"productCode": "prod-paid", "dimensions": ["users", "gb"]}
HOOK = "helm.sh/hook"


def doctor_pod(docs: list[Doc]) -> Doc:
    """The one Pod annotated as a Helm test."""
    pods = [d for d in docs if d["kind"] == "Pod" and d["metadata"]["annotations"].get(HOOK)]
    assert len(pods) == 1, pods
    return pods[0]


def test_the_sidecar_doctor_pod_is_the_sidecar_container_running_doctor(
    helm: Helm, example_chart: Path
) -> None:
    """Same image, env, mounts and hardening as the sidecar; args `doctor`; the app's IRSA SA."""
    docs = helm.template(example_chart, values=SIDECAR_VALUES)
    pod = doctor_pod(docs)
    spec = pod_spec(docs)
    sidecar = container(spec["initContainers"], "entitlement-sidecar")
    (doctor,) = pod["spec"]["containers"]
    assert pod["metadata"]["annotations"][HOOK] == "test"
    assert (doctor["args"], pod["spec"]["restartPolicy"]) == (["doctor"], "Never")
    for key in ("image", "env", "volumeMounts", "securityContext"):
        assert doctor[key] == sidecar[key], key
    assert pod["spec"]["serviceAccountName"] == spec["serviceAccountName"]
    assert not {"ports", "startupProbe", "readinessProbe", "livenessProbe"} & set(doctor)


def test_the_operator_doctor_pod_runs_doctor_with_the_operators_environment(helm: Helm) -> None:
    """Same image, env and ServiceAccount as the operator; args `doctor --operator`."""
    docs = helm.template(OPERATOR_CHART, values=OPERATOR_VALUES)
    pod = doctor_pod(docs)
    deployment = find(docs, "Deployment")["spec"]["template"]["spec"]
    operator = container(deployment["containers"], "operator")
    (doctor,) = pod["spec"]["containers"]
    assert doctor["args"] == ["doctor", "--operator"]
    for key in ("image", "env", "securityContext"):
        assert doctor[key] == operator[key], key
    assert pod["spec"]["serviceAccountName"] == deployment["serviceAccountName"]


@pytest.mark.parametrize(
    ("chart", "values", "kind"),
    [("example", SIDECAR_VALUES, "Deployment"), ("operator", OPERATOR_VALUES, "Deployment")],
    ids=["sidecar", "operator"],
)
def test_no_replica_set_would_adopt_the_doctor_pod(
    helm: Helm, example_chart: Path, chart: str, values: dict[str, Any], kind: str
) -> None:
    """The Pod's labels do not match the Deployment's selector (a ReplicaSet adopts bare Pods)."""
    docs = helm.template(example_chart if chart == "example" else OPERATOR_CHART, values=values)
    selector = find(docs, kind)["spec"]["selector"]["matchLabels"]
    labels = doctor_pod(docs)["metadata"]["labels"]
    assert not selector.items() <= labels.items()


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_doctor_pods_are_valid_kubernetes_objects(
    helm: Helm, example_chart: Path, version: str
) -> None:
    """Both Pods pass the strict schema of each supported Kubernetes version."""
    for chart, values in ((example_chart, SIDECAR_VALUES), (OPERATOR_CHART, OPERATOR_VALUES)):
        pod = doctor_pod(helm.template(chart, values=values, kube_version=version))
        kubernetes_validate.validate(pod, version, strict=True)


def test_the_doctor_pods_can_be_left_out(helm: Helm, example_chart: Path) -> None:
    """`tests.doctor.enabled: false` renders no test Pod in either chart."""
    off = {"tests": {"doctor": {"enabled": False}}}
    for chart, values in ((example_chart, SIDECAR_VALUES), (OPERATOR_CHART, OPERATOR_VALUES)):
        docs = helm.template(chart, values={**values, **off})
        assert not [d for d in docs if d["kind"] == "Pod"]


def run_rendered(doctor: Doc, emu: Emulator, **mapped: str) -> tuple[int, dict[str, Any]]:
    """Start the rendered container's args with its env, as the kubelet would, on this machine."""
    env = clean_env()
    fields = {"metadata.uid": "pod-uid-1", "metadata.namespace": "shop", "metadata.name": "t"}
    for item in doctor["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    env.update(emu.env(access_key_id="AKIDDOCTORPOD"), **mapped)
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", *doctor["args"], "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def test_the_rendered_sidecar_doctor_pod_passes_against_the_emulator(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """Run as rendered (status volume and key ring mapped): nothing fails; the only warnings
    are the ones a fresh test Pod must give (no allow-list in this chart, no call recorded)."""
    with Emulator() as emu:
        doctor = doctor_pod(helm.template(example_chart, values=SIDECAR_VALUES))["spec"][
            "containers"
        ][0]
        code, report = run_rendered(
            doctor,
            emu,
            ENTITLEMENT_STATUS_DIR=str(tmp_path),
            ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
        )
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert code == 0, report
    assert {name for name, status in statuses.items() if status != "ok"} <= {
        "trusted-codes",
        "permission",
    }


def test_the_rendered_operator_doctor_pod_passes_against_the_emulator(helm: Helm) -> None:
    """Run as rendered against the emulator: every check ok, MeterUsage proven by a dry run."""
    with Emulator() as emu:
        doctor = doctor_pod(helm.template(OPERATOR_CHART, values=OPERATOR_VALUES))["spec"][
            "containers"
        ][0]
        code, report = run_rendered(doctor, emu)
    assert code == 0, report
    assert {c["status"] for c in report["checks"]} == {"ok"}
