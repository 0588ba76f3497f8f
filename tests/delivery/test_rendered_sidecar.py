"""The container the chart renders, run for real: its args, env and probes work with the sidecar.

A small stand-in for the kubelet: it starts the rendered sidecar container as a local process
(the rendered args and env; downward-API fields filled in; the status volume and key ring mapped
to temporary directories), points it at the local Metering emulator, and polls the rendered
probes over HTTP. No cluster needed; what it proves is that the chart and the sidecar agree on
command, settings, port and probe paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar.defaults import DENIED
from entitlement_sidecar.testing import clean_env, free_port, http_get
from tests.delivery.helm import Doc, Helm, container, pod_spec

ENTRYPOINT = str(Path(sys.executable).parent / "entitlement-sidecar")
WAIT = 60.0  # an upper bound for a failure message, not a timing assertion


def rendered_sidecar(helm: Helm, chart: Path, shape: str, product: str, port: int) -> Doc:
    """The sidecar container of example-app rendered in one shape."""
    values: dict[str, Any] = {
        "entitlement": {"productCode": product, "sidecar": {"shape": shape, "port": port}}
    }
    spec = pod_spec(helm.template(chart, values=values))
    where = "containers" if shape == "classic" else "initContainers"
    return container(spec[where], "entitlement-sidecar")


def kubelet_env(sidecar: Doc, emu: Emulator, status: Path, pod_uid: str) -> dict[str, str]:
    """The process environment the kubelet would give the container, mapped to this machine."""
    env = clean_env()
    fields = {"metadata.uid": pod_uid, "metadata.namespace": "shop", "metadata.name": "app-0"}
    for item in sidecar["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    mount = sidecar["volumeMounts"][0]["mountPath"]
    assert env["ENTITLEMENT_STATUS_DIR"] == mount
    env["ENTITLEMENT_STATUS_DIR"] = env["TMPDIR"] = str(status)  # the emptyDir
    env["ENTITLEMENT_PUBLIC_KEYS"] = str(emu.public_key_dir)  # the key ring baked in the image
    env.update(emu.env(access_key_id=f"AKID{pod_uid[:8].upper()}"))
    return env


def http_status(port: int, probe: Doc) -> int:
    """Status code of an httpGet probe against the local process (0: no answer)."""
    get = probe["httpGet"]
    assert get["port"] == port
    return http_get(f"http://127.0.0.1:{port}{get['path']}", timeout=2, quiet=True)[0]


def wait_for(predicate: Any, what: str) -> None:
    """Poll until predicate() is true; fail naming `what` after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def started(sidecar: Doc, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The rendered container's process (output to `log`), terminated afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [ENTRYPOINT, *sidecar["args"]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def check(env: dict[str, str], *flags: str) -> int:
    """Exit code of `entitlement-sidecar check` (the NOTES / ECS health check command)."""
    return subprocess.run(
        [ENTRYPOINT, "check", *flags], env=env, capture_output=True, check=False
    ).returncode


def registered(emu: Emulator) -> int:
    """How many RegisterUsage requests the emulator answered."""
    count: int = emu.records()["requests"].get("RegisterUsage", 0)
    return count


def denied(status_dir: Path) -> bool:
    """True once status.json records a denial."""
    path = status_dir / "status.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return bool(doc.get("state") == DENIED)


def prepare(
    helm: Helm, chart: Path, emu: Emulator, tmp_path: Path, *, shape: str, product: str
) -> tuple[Doc, dict[str, str], int]:
    """(rendered sidecar, its kubelet environment, its port) with an empty status volume."""
    port = free_port()
    sidecar = rendered_sidecar(helm, chart, shape, product, port)
    env = kubelet_env(sidecar, emu, tmp_path / "status", str(uuid.uuid4()))
    (tmp_path / "status").mkdir()
    return sidecar, env, port


def run_once(sidecar: Doc, env: dict[str, str]) -> int:
    """Exit code of the rendered (one-shot) container command."""
    proc = subprocess.run(
        [ENTRYPOINT, *sidecar["args"]], env=env, capture_output=True, check=False, timeout=WAIT
    )
    return proc.returncode


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The Metering emulator on loopback with its default scenario."""
    with Emulator(public_key_dir=tmp_path / "keys") as emu:
        yield emu


PROBE_CASES = [
    (shape, product) for shape in ("native", "classic") for product in ("prod-paid", "prod-lapsed")
]


@pytest.mark.parametrize("case", PROBE_CASES, ids=[f"{s}-{p}" for s, p in PROBE_CASES])
def test_rendered_probes_follow_the_entitlement(
    helm: Helm, example_chart: Path, emulator: Emulator, tmp_path: Path, case: tuple[str, str]
) -> None:
    """The gating probe passes once entitled, keeps failing when denied; liveness always passes."""
    shape, product = case
    entitled = product == "prod-paid"
    sidecar, env, port = prepare(
        helm, example_chart, emulator, tmp_path, shape=shape, product=product
    )
    gate = sidecar["startupProbe"] if shape == "native" else sidecar["readinessProbe"]
    with started(sidecar, env, tmp_path / "sidecar.log"):
        wait_for(lambda: http_status(port, sidecar["livenessProbe"]) == 200, "liveness 200")
        if entitled:
            wait_for(lambda: http_status(port, gate) == 200, "the gating probe to pass")
        else:
            wait_for(lambda: denied(tmp_path / "status"), "a denied status")
        expected = 200 if entitled else 503
        assert (http_status(port, gate), http_status(port, sidecar["readinessProbe"])) == (
            expected,
            expected,
        )
        assert http_status(port, sidecar["livenessProbe"]) == 200
        assert check(env, "--verify") == (0 if entitled else 1)
    assert registered(emulator) == 1
    nonces = [r["nonce"] for r in emulator.records()["registrations"]]
    assert all(n.startswith(env["POD_UID"]) for n in nonces)


@pytest.mark.parametrize("case", [("prod-paid", 0), ("prod-lapsed", 1)], ids=["entitled", "lapsed"])
def test_rendered_init_container_exit_code_gates_the_pod(
    helm: Helm, example_chart: Path, emulator: Emulator, tmp_path: Path, case: tuple[str, int]
) -> None:
    """The init shape's rendered command exits 0 when entitled (status verifies), 1 when not."""
    product, code = case
    sidecar, env, _ = prepare(
        helm, example_chart, emulator, tmp_path, shape="init", product=product
    )
    assert run_once(sidecar, env) == code
    assert check(env, "--verify") == code
