"""`entitlement-sidecar demo` (`make demo`): the sidecar's whole story on the embedded emulator.

Starts the local Metering emulator in this process, then real `entitlement-sidecar run`
subprocesses against it (status in temp directories), and narrates four pods: an entitled product
(ready, `check --verify` passes, a copy presented by another pod fails), a lapsed subscription
(denied, not ready), a forged token (signed with a key outside the ring: SignatureInvalid), and a
throttled start that still becomes ready; then a fifth pod whose app reports usage across an hour
boundary (`demo_usage.py`); then contract pricing on the emulator's License Manager
(`demo_contract.py`): a tiered license, a 2-seat floating license where a third pod waits for a
seat, and an expiry under both policies. Exit 0 when every step behaved as described.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from entitlement_sidecar.demo_contract import ContractStoryFailed, contract_story
from entitlement_sidecar.demo_usage import UsageStoryFailed, usage_story
from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import ShiftedClock, free_port, http_get

SCENARIO: dict[str, Any] = {
    "region": "us-east-1",
    "products": {
        "prod-paid": {"entitled": True, "dimensions": ["gb_scanned", "jobs"]},
        "prod-lapsed": {"entitled": False},
        "prod-forged": {"entitled": True, "sign_with_unlisted_key": True},
    },
}
THROTTLED = {**SCENARIO, "faults": [{"op": "RegisterUsage", "kind": "throttle", "count": 2}]}


class DemoFailed(Exception):
    """A step did not behave as narrated."""


class Pod:
    """One `entitlement-sidecar run` process with its own status directory and port."""

    def __init__(
        self,
        emu: Emulator,
        workdir: Path,
        name: str,
        product: str | None,
        *,
        port: int | None = None,
        command: list[str] | None = None,
        **env: str,
    ) -> None:
        self.name = name
        self.status_dir = workdir / name
        self.status_dir.mkdir()
        self.port = port or free_port()
        self.log = (workdir / f"{name}.log").open("wb")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POD_"))}
        self.env = {k: v for k, v in self.env.items() if not k.startswith(("ENTITLEMENT_", "ECS_"))}
        self.env.update(emu.env(access_key_id=f"AKID{name.upper().replace('-', '')}"))
        if product is not None:  # None: a contract product (License Manager, no product code)
            self.env["ENTITLEMENT_PRODUCT_CODE"] = product
        self.env.update(
            ENTITLEMENT_PUBLIC_KEYS=str(workdir / "keys"),
            ENTITLEMENT_STATUS_DIR=str(self.status_dir),
            ENTITLEMENT_PORT=str(self.port),
            ENTITLEMENT_INSTANCE_ID=name,
            ENTITLEMENT_BACKOFF_INITIAL="0.2",
            ENTITLEMENT_BACKOFF_MAX="1",
            ENTITLEMENT_LOG_FORMAT="text",
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.env.update(env)  # e.g. another key version (tests/monitoring), the usage intake
        self.started = time.monotonic()
        command = command or [sys.executable, "-m", "entitlement_sidecar", "run"]
        self.process = subprocess.Popen(command, env=self.env, stderr=self.log)

    def get(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.port}{path}", timeout=2, quiet=True)

    def wait_state(self, *states: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, body = self.get("/status")
            if code == 200 and json.loads(body).get("state") in states:
                return dict(json.loads(body))
            if self.process.poll() is not None:
                raise DemoFailed(f"{self.name}: sidecar exited with {self.process.returncode}")
            time.sleep(0.01)
        raise DemoFailed(f"{self.name}: state never became {' or '.join(states)}")

    def wait_ready(self, timeout: float = 10) -> float:
        """Seconds from exec until /readyz answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/readyz")[0] == 200:
                return time.monotonic() - self.started
            time.sleep(0.01)
        raise DemoFailed(f"{self.name}: /readyz never answered 200")

    def check(self, *args: str, **env: str) -> tuple[int, str]:
        result = subprocess.run(
            [sys.executable, "-m", "entitlement_sidecar", "check", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode, (result.stdout + result.stderr).strip()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(10)
        self.log.close()
        return code


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


def _entitled(emu: Emulator, workdir: Path, say: Any) -> Pod:
    say("\n1. An entitled product: prod-paid")
    pod = Pod(emu, workdir, "demo-pod-1", "prod-paid")
    say(f"   $ entitlement-sidecar run        (pod {pod.name}, probes on :{pod.port})")
    ready_after = pod.wait_ready()
    doc = pod.wait_state("entitled")
    say(
        f"   /readyz 200 after {ready_after:.2f} s; status.json: state={doc['state']} "
        f"instance={doc['instance']} attempts={doc['attempts']}"
    )
    say(f"   nonce {doc['nonce'][:32]}... is bound to this pod; token.jwt written beside it")
    say(
        "   PS256 signature verified with key version 1 from the key ring; claims match the "
        "request (product code, key version, nonce)"
    )
    code, out = pod.check("--verify")
    _expect(code == 0, f"check --verify should pass: {out}")
    say(f"   $ entitlement-sidecar check --verify   -> exit {code}: {out}")
    code, out = pod.check("--verify", ENTITLEMENT_INSTANCE_ID="demo-pod-2")
    _expect(code == 1, "another pod must not pass with these files")
    say(f"   the same files checked by another pod   -> exit {code}: {out}")
    return pod


def _denied(emu: Emulator, workdir: Path, say: Any, *, name: str, product: str, reason: str) -> Pod:
    pod = Pod(emu, workdir, name, product)
    doc = pod.wait_state("denied")
    _expect(doc["reason"] == reason, f"{name}: expected {reason}, got {doc['reason']}")
    code, body = pod.get("/readyz")
    _expect(code == 503, "/readyz must stay 503 when denied")
    live, _ = pod.get("/livez")
    say(f"   status.json: state=denied reason={doc['reason']}")
    say(f"   ({doc['message']})")
    say(f'   /readyz {code} "{body.strip()}"; /livez {live}: it keeps serving, never ready')
    code, out = pod.check()
    say(f"   $ entitlement-sidecar check           -> exit {code}: {out}")
    return pod


def _throttled(emu: Emulator, workdir: Path, say: Any) -> Pod:
    say("\n4. A throttled start: the service answers ThrottlingException twice")
    emu.set_scenario(THROTTLED)
    pod = Pod(emu, workdir, "demo-pod-4", "prod-paid")
    ready_after = pod.wait_ready()
    doc = pod.wait_state("entitled")
    _expect(doc["attempts"] == 3, f"expected 3 attempts, saw {doc['attempts']}")
    say(
        f"   retried with jittered exponential backoff: attempts={doc['attempts']} "
        f"{json.dumps(doc['attempt_results'], sort_keys=True)}"
    )
    say(f"   /readyz 200 after {ready_after:.2f} s ({doc['duration_seconds']:.2f} s registering)")
    _code, metrics = pod.get("/metrics")
    line = next(x for x in metrics.splitlines() if 'result="ThrottlingException"' in x)
    say(f"   /metrics: {line}")
    return pod


def run_demo(say: Any = print) -> int:
    """Run the walk-through; 0 when every step behaved as narrated."""
    from entitlement_sidecar.sidecar import policy

    if policy.load().profile != policy.PERMISSIVE:
        say(
            "entitlement-sidecar demo: this installation's image policy is release: it refuses "
            "the key ring the emulator generates for the demo. `make demo` bakes the permissive "
            "policy into .venv/ (or run `entitlement-sidecar policy bake --profile permissive`)"
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="entitlement-demo-"))
    pods: list[Pod] = []
    begun = time.monotonic()
    try:
        clock = ShiftedClock(workdir / "clock")  # the usage story moves it; the rest ignores it
        with Emulator(SCENARIO, now=clock.now) as emu:
            shutil.copytree(emu.public_key_dir, workdir / "keys")
            say(
                "entitlement-sidecar demo: the sidecar against the embedded AWS Marketplace "
                "Metering emulator"
            )
            say(
                f"emulator on {emu.url}; key ring {workdir / 'keys'} (the public keys it signs "
                "with); one `run` process per pod"
            )
            pods.append(_entitled(emu, workdir, say))
            say("\n2. A lapsed subscription: prod-lapsed")
            pods.append(
                _denied(
                    emu,
                    workdir,
                    say,
                    name="demo-pod-2",
                    product="prod-lapsed",
                    reason="CustomerNotEntitledException",
                )
            )
            say("\n3. A forged token: the emulator signs prod-forged with a key outside the ring")
            pods.append(
                _denied(
                    emu,
                    workdir,
                    say,
                    name="demo-pod-3",
                    product="prod-forged",
                    reason="SignatureInvalid",
                )
            )
            pods.append(_throttled(emu, workdir, say))
            emu.set_scenario(SCENARIO)
            usage_story(lambda *a, **env: Pod(emu, workdir, *a, **env), emu, clock, say)
            contract_story(lambda *a, **env: Pod(emu, workdir, *a, **env), emu, SCENARIO, say)
            codes = [pod.stop() for pod in pods]
            _expect(codes == [0] * len(pods), f"SIGTERM should exit 0, got {codes}")
            say(f"\n9. SIGTERM to the four RegisterUsage sidecars -> exit codes {codes}")
    except (DemoFailed, UsageStoryFailed, ContractStoryFailed) as failure:
        say(f"\nDEMO FAILED: {failure} (sidecar logs in {workdir})")
        for pod in pods:
            if pod.process.poll() is None:
                pod.stop()
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    say(f"\nAll eleven pods behaved as expected in {time.monotonic() - begun:.1f} s.")
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] in {"-h", "--help"}:
        print("usage: entitlement-sidecar demo\n\n" + (__doc__ or "").split("\n\n")[1])
        return 0
    code = run_demo()
    sys.stdout.flush()
    return code
