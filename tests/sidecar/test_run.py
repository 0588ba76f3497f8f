"""`entitlement-sidecar run` as a real process: probes, states, the latch, signals, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.testing import clean_env, free_port, http_get, installation

from .conftest import PRODUCT, RunningSidecar, cli, sidecar_env

Start = Any  # the run_sidecar fixture: (env, **popen) -> RunningSidecar


def _faulty(**fault: Any) -> dict[str, Any]:
    """A scenario where RegisterUsage for PRODUCT meets `fault`."""
    return {"products": {PRODUCT: {}}, "faults": [{"op": "RegisterUsage", **fault}]}


def test_an_entitled_pod_becomes_ready_and_stops_on_sigterm(
    emulator: Emulator, run_sidecar: Start, tmp_path: Path
) -> None:
    """Entitled: probes 200, status entitled, check --verify 0, SIGTERM 0, token never logged."""
    env = sidecar_env(emulator, tmp_path, ENTITLEMENT_LOG_LEVEL="DEBUG")
    sidecar: RunningSidecar = run_sidecar(env)
    sidecar.wait_ready()
    assert sidecar.get("/livez")[0] == 200
    code, body = sidecar.get("/status")
    assert (code, json.loads(body)["state"]) == (200, "entitled")
    assert cli("check", "--verify", env=env).returncode == 0
    code, body = sidecar.get("/metrics")
    assert 'entitlement_sidecar_register_attempts_total{result="Success"} 1' in body
    assert (sidecar.get("/nope")[0], _post(sidecar.url("/readyz"))) == (404, 405)
    exit_code, stderr = sidecar.stop()
    assert exit_code == 0, stderr
    assert "readyz" not in stderr  # probe hits are not logged
    assert "livez" not in stderr
    token = (tmp_path / "token.jwt").read_text().strip()
    assert token.split(".")[2] not in stderr  # the token is never logged, nor its signature


def _post(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5)  # noqa: S310
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def test_a_lapsed_subscription_keeps_serving_not_ready(run_sidecar: Start, tmp_path: Path) -> None:
    """Denied: the process stays up, /readyz 503 with the reason, /status says why."""
    with Emulator() as emu:
        env = sidecar_env(emu, tmp_path, ENTITLEMENT_PRODUCT_CODE="prod-lapsed")
        sidecar: RunningSidecar = run_sidecar(env)
        doc = sidecar.wait_state("denied")
        assert doc["reason"] == "CustomerNotEntitledException"
        code, body = sidecar.get("/readyz")
        assert code == 503
        assert "CustomerNotEntitledException" in body
        assert sidecar.get("/livez")[0] == 200
        assert cli("check", env=env).returncode == 1
        assert sidecar.process.poll() is None


def test_a_restarted_sidecar_in_a_denied_pod_stays_denied(
    run_sidecar: Start, tmp_path: Path
) -> None:
    """The kubelet restarting a denied native sidecar does not buy it a second RegisterUsage."""
    with Emulator() as emu:
        env = sidecar_env(emu, tmp_path, ENTITLEMENT_PRODUCT_CODE="prod-lapsed")
        first: RunningSidecar = run_sidecar(env)
        first_message = first.wait_state("denied")["message"]
        first.stop()
        again: RunningSidecar = run_sidecar(env)
        doc = again.wait_state("denied", where=lambda doc: doc.get("message") != first_message)
        assert "denied earlier" in doc["message"]
        assert again.get("/readyz")[0] == 503
        assert emu.records()["requests"]["RegisterUsage"] == 1


def test_budget_exhaustion_keeps_serving_unavailable(run_sidecar: Start, tmp_path: Path) -> None:
    """Transient failures past STARTUP_TIMEOUT: state unavailable, still serving, not ready."""
    with Emulator(_faulty(kind="http_503")) as emu:
        sidecar: RunningSidecar = run_sidecar(
            sidecar_env(emu, tmp_path, ENTITLEMENT_STARTUP_TIMEOUT="1")
        )
        sidecar.wait_state("unavailable")
        assert sidecar.get("/readyz")[0] == 503
        assert 'entitlement_sidecar_state{state="unavailable"} 1' in sidecar.get("/metrics")[1]


def test_livez_answers_while_registration_is_pending(run_sidecar: Start, tmp_path: Path) -> None:
    """Before RegisterUsage answers: /livez 200, /readyz 503 pending, status pending."""
    with Emulator(_faulty(kind="hold", count=1)) as emu:
        sidecar: RunningSidecar = run_sidecar(sidecar_env(emu, tmp_path))
        sidecar.wait_serving()
        emu.wait_held(timeout=30)  # RegisterUsage is in flight, parked by the emulator
        code, body = sidecar.get("/readyz")
        assert (code, body.strip()) == (503, "not ready: pending")
        assert (status.read(str(tmp_path)) or {})["state"] == "pending"
        emu.release()
        sidecar.wait_ready()


@pytest.fixture
def registering(run_sidecar: Start, tmp_path: Path) -> Iterator[tuple[RunningSidecar, Any]]:
    """A serving sidecar whose RegisterUsage hangs (held until the test ends), and its child."""
    import psutil

    with Emulator(_faulty(kind="hold", count=1)) as emu:
        sidecar: RunningSidecar = run_sidecar(sidecar_env(emu, tmp_path))
        sidecar.wait_serving()
        emu.wait_held(timeout=30)
        (child,) = psutil.Process(sidecar.process.pid).children(recursive=True)
        yield sidecar, child


def test_sigterm_while_registering_exits_0_and_stops_the_child(
    registering: tuple[RunningSidecar, Any],
) -> None:
    """SIGTERM during a slow RegisterUsage: exit 0 (within stop()'s 10 s), no child left."""
    sidecar, child = registering
    assert sidecar.stop()[0] == 0
    assert not (child.is_running() and child.status() != "zombie")


def test_a_crashed_registration_process_is_reported_unavailable(
    registering: tuple[RunningSidecar, Any],
) -> None:
    """If the registration process dies, status says RegistrationFailed and it stays not ready."""
    sidecar, child = registering
    child.kill()
    assert sidecar.wait_state("unavailable")["reason"] == "RegistrationFailed"
    assert sidecar.get("/readyz")[0] == 503
    assert sidecar.process.poll() is None


def test_a_port_in_use_is_a_configuration_error(emulator: Emulator, tmp_path: Path) -> None:
    """ENTITLEMENT_PORT already taken: exit 2 with one line naming it."""
    with socket.create_server(("0.0.0.0", 0)) as taken:  # noqa: S104 - same bind as the sidecar
        port = str(taken.getsockname()[1])
        result = cli("run", env=sidecar_env(emulator, tmp_path, ENTITLEMENT_PORT=port))
    assert result.returncode == 2
    assert f"ENTITLEMENT_PORT={port}" in result.stderr


def test_a_throttled_start_still_becomes_ready(run_sidecar: Start, tmp_path: Path) -> None:
    """Throttled twice at start: retried with backoff, then ready; metrics count the throttles."""
    with Emulator(_faulty(kind="throttle", count=2)) as emu:
        sidecar: RunningSidecar = run_sidecar(sidecar_env(emu, tmp_path))
        sidecar.wait_ready()
        body = sidecar.get("/metrics")[1]
        assert 'entitlement_sidecar_register_attempts_total{result="ThrottlingException"} 2' in body


def test_once_ready_never_back_to_not_ready(
    emulator: Emulator, run_sidecar: Start, tmp_path: Path
) -> None:
    """After entitled, a status overwritten as denied (or deleted) leaves /readyz at 200."""
    sidecar: RunningSidecar = run_sidecar(sidecar_env(emulator, tmp_path))
    sidecar.wait_ready()
    status.write(str(tmp_path), status.document("denied", reason="CustomerNotEntitledException"))
    assert sidecar.get("/readyz")[0] == 200
    assert json.loads(sidecar.get("/status")[1])["state"] == "denied"
    (tmp_path / "status.json").unlink()
    assert sidecar.get("/readyz")[0] == 200


def test_a_handwritten_entitled_status_does_not_make_it_ready(
    run_sidecar: Start, tmp_path: Path
) -> None:
    """Readiness needs the registration child to succeed, not just an entitled-looking file."""
    with Emulator() as emu:
        env = sidecar_env(emu, tmp_path, ENTITLEMENT_PRODUCT_CODE="prod-lapsed")
        sidecar: RunningSidecar = run_sidecar(env)
        sidecar.wait_state("denied")
        status.write(str(tmp_path), status.document("entitled", instance="pod-uid-0001"))
        assert sidecar.get("/readyz")[0] == 503


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"ENTITLEMENT_PRODUCT_CODE": ""}, "ENTITLEMENT_PRODUCT_CODE"),
        ({"ENTITLEMENT_PORT": "http"}, "ENTITLEMENT_PORT"),
        ({"ENTITLEMENT_STARTUP_TIMEOUT": "-1"}, "ENTITLEMENT_STARTUP_TIMEOUT"),
        ({"ENTITLEMENT_PUBLIC_KEY_VERSION": "7"}, "ENTITLEMENT_PUBLIC_KEYS"),
        ({"POD_UID": ""}, "ENTITLEMENT_INSTANCE_ID"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}, "ENTITLEMENT_REGION"),
        ({"ENTITLEMENT_STATUS_DIR": "/nonexistent/status"}, "ENTITLEMENT_STATUS_DIR"),
    ],
    ids=[
        "missing-product",
        "bad-port",
        "bad-timeout",
        "no-key-for-version",
        "no-identity",
        "no-region",
        "status-dir-missing",
    ],
)
def test_invalid_configuration_exits_2_with_one_line(
    emulator: Emulator, tmp_path: Path, extra: dict[str, str], variable: str
) -> None:
    """Invalid settings: `run` exits 2 with one line naming the variable, before any AWS call."""
    env = {**sidecar_env(emulator, tmp_path, ENTITLEMENT_PORT=str(free_port())), **extra}
    result = cli("run", env=env, timeout=30)
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if "invalid configuration" in line]
    assert len(problems) == 1, result.stderr
    assert variable in problems[0]
    assert "Traceback" not in result.stderr
    assert emulator.records()["registrations"] == []


def _world_usable(path: Path) -> bool:
    """True when any user may execute `path` and traverse every directory above it."""
    try:
        return all(p.stat().st_mode & 0o001 for p in [path.resolve(), *path.resolve().parents])
    except OSError:
        return False


def _python_for_any_user() -> str | None:
    """A python of our version that a non-root user can run (the venv's may live in /root)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{name}", f"/usr/local/bin/{name}"):
        if Path(candidate).exists() and _world_usable(Path(candidate)):
            return candidate
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to a numeric non-root UID")
def test_runs_as_a_numeric_non_root_uid_writing_only_the_status_dir(
    emulator: Emulator, run_sidecar: Start, request_cleanup: list[Path]
) -> None:
    """As UID 65532 with only STATUS_DIR writable (no bytecode writes), it becomes ready."""
    python = _python_for_any_user()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    if python is None or not _world_usable(site_packages):
        pytest.skip("no interpreter and site-packages that a non-root user may use")
    tmp_path = Path(tempfile.mkdtemp(prefix="sidecar-uid-"))  # pytest's tmp is root-only
    tmp_path.chmod(0o755)
    request_cleanup.append(tmp_path)
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    os.chown(status_dir, 65532, 65532)
    ring = tmp_path / "keys"
    shutil.copytree(emulator.public_key_dir, ring)
    for path in [ring, *ring.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = sidecar_env(emulator, status_dir, ENTITLEMENT_PUBLIC_KEYS=str(ring), HOME="/nonexistent")
    env.pop("PYTHONDONTWRITEBYTECODE")
    python = installation(tmp_path / "venv", "--profile", "permissive", python=python)
    sidecar: RunningSidecar = run_sidecar(env, python=python, user=65532, group=65532, cwd="/")
    sidecar.wait_ready()
    assert {"status.json", "token.jwt"} == {p.name for p in status_dir.iterdir()}
    assert sidecar.stop()[0] == 0


READ_ONLY_ROOT = (
    'mount -o remount,bind,ro / && mount -t tmpfs -o size=1m,mode=0755 tmpfs "$STATUS" && exec "$@"'
)


def _can_make_read_only_root() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -o remount,bind,ro / && ! touch /.entitlement-ro-probe 2>/dev/null",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_make_read_only_root(), reason="needs root and mount namespaces")
def test_runs_on_a_read_only_root_filesystem(
    emulator: Emulator, run_sidecar: Start, tmp_path: Path
) -> None:
    """With / read-only and only STATUS_DIR writable (a tmpfs), it registers and serves."""
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    env = sidecar_env(emulator, status_dir, STATUS=str(status_dir))
    env.pop("PYTHONDONTWRITEBYTECODE")
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh"]
    sidecar: RunningSidecar = run_sidecar(env, wrapper=wrapper)
    sidecar.wait_ready()
    assert json.loads(sidecar.get("/status")[1])["state"] == "entitled"
    inside = subprocess.run(
        [
            "nsenter",
            "--mount",
            "--target",
            str(sidecar.process.pid),
            sys.executable,
            "-m",
            "entitlement_sidecar",
            "check",
            "--verify",
        ],
        env=sidecar.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert inside.returncode == 0, inside.stderr
    assert list(status_dir.iterdir()) == []  # the files live in the pod's tmpfs only
    assert sidecar.stop()[0] == 0


@pytest.fixture
def request_cleanup() -> Iterator[list[Path]]:
    """Directories to remove after the test."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def test_run_started_isolated_starts_its_child_isolated(emulator: Emulator, tmp_path: Path) -> None:
    """Started like the image starts it (`python -IB`), `run` gives its registration child the
    same flags: a PYTHONPATH set in the pod spec loads no code into either process."""
    hijack = tmp_path / "hijack"
    hijack.mkdir()
    marker = tmp_path / "hijacked"
    (hijack / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    control = subprocess.run(
        [sys.executable, "-c", "pass"], env={**clean_env(), "PYTHONPATH": str(hijack)}, check=True
    )
    assert control.returncode == 0
    assert marker.read_text() == "x"  # without -I the pod spec's PYTHONPATH would run code
    marker.unlink()
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    port = free_port()
    env = sidecar_env(emulator, status_dir, PYTHONPATH=str(hijack), ENTITLEMENT_PORT=str(port))
    process = subprocess.Popen(
        [sys.executable, "-IB", "-m", "entitlement_sidecar", "run"], env=env, cwd="/"
    )
    try:
        deadline = time.monotonic() + 60
        while http_get(f"http://127.0.0.1:{port}/readyz", timeout=2, quiet=True)[0] != 200:
            assert process.poll() is None, "run exited"
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(10)
    assert not marker.exists()
