"""Fixtures for the sidecar tests: the emulator, clean environments, crafted tokens, processes."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env, free_port, http_get

HERE = Path(__file__).parent
DEMO_PRIVATE_KEY = HERE / "jwtio_demo_key.pem"
PRODUCT = "prod-paid"
INSTANCE = "pod-uid-0001"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Signer:
    """An RSA key that crafts compact JWS tokens the way an attacker (or AWS) would."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_ring(self, directory: Path, version: int = 1) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{version}.pem").write_bytes(self.public_pem())
        return directory

    def pss(self, data: bytes, salt: int = 32) -> bytes:
        return self.key.sign(
            data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256()
        )

    def token(
        self,
        claims: Mapping[str, Any],
        header: Mapping[str, Any] | None = None,
        salt: int = 32,
    ) -> str:
        head = b64url(json.dumps(header or {"alg": "PS256", "typ": "JWT"}).encode())
        body = b64url(json.dumps(dict(claims)).encode())
        signing_input = f"{head}.{body}".encode()
        return f"{head}.{body}.{b64url(self.pss(signing_input, salt))}"


def claims(nonce: str, product: str = PRODUCT, version: int = 1) -> dict[str, Any]:
    return {"productCode": product, "publicKeyVersion": version, "nonce": nonce, "iat": 1}


@pytest.fixture(scope="session")
def signer() -> Signer:
    """One RSA-2048 key for the session (generating keys is slow)."""
    return Signer()


@pytest.fixture(scope="session")
def other_signer() -> Signer:
    """A second key: tokens it signs must not verify with `signer`'s public key."""
    return Signer()


@pytest.fixture(scope="session")
def demo_signer() -> Signer:
    """The jwt.io demo key: its private half is public, so nothing it signs may be trusted."""
    key = serialization.load_pem_private_key(DEMO_PRIVATE_KEY.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Signer(key)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The Metering emulator with its default scenario (prod-paid entitled, prod-lapsed not)."""
    with Emulator() as emu:
        yield emu


def sidecar_env(emu: Emulator, status_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment that points the sidecar at `emu` as pod INSTANCE, fast backoff."""
    values = {
        **emu.env(access_key_id="AKIDPOD1"),
        "ENTITLEMENT_PRODUCT_CODE": PRODUCT,
        "ENTITLEMENT_PUBLIC_KEYS": str(emu.public_key_dir),
        "ENTITLEMENT_STATUS_DIR": str(status_dir),
        "ENTITLEMENT_BACKOFF_INITIAL": "0.05",
        "ENTITLEMENT_BACKOFF_MAX": "0.2",
        "ENTITLEMENT_STARTUP_TIMEOUT": "20",
        "POD_UID": INSTANCE,
        **extra,
    }
    return clean_env(**values)


def cli(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m entitlement_sidecar ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RunningSidecar:
    """`entitlement-sidecar run` as a real subprocess on a free port."""

    def __init__(
        self,
        env: Mapping[str, str],
        python: str = sys.executable,
        wrapper: Sequence[str] = (),
        **popen: Any,
    ) -> None:
        self.port = free_port()
        self.env = {**env, "ENTITLEMENT_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [*wrapper, python, "-m", "entitlement_sidecar", "run"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **popen,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        return http_get(self.url(path))

    def wait_serving(self, timeout: float = 20) -> None:
        self._until(lambda: self._status("/livez") == 200, timeout, "never served /livez")

    def wait_state(
        self,
        *states: str,
        timeout: float = 30,
        where: Callable[[dict[str, Any]], bool] = lambda doc: True,
    ) -> dict[str, Any]:
        """Poll /status until the state is one of `states` (and `where` holds); return it."""
        seen: dict[str, Any] = {}

        def check() -> bool:
            nonlocal seen
            code, body = self._get_quiet("/status")
            seen = json.loads(body) if code == 200 else {}
            return seen.get("state") in states and where(seen)

        self._until(check, timeout, f"state never became {states}")
        return seen

    def wait_ready(self, timeout: float = 30) -> None:
        self._until(lambda: self._status("/readyz") == 200, timeout, "never ready")

    def stop(self, timeout: float = 10) -> tuple[int, str]:
        """SIGTERM, then (exit code, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate()
        return self.process.returncode, err

    def _status(self, path: str) -> int:
        return self._get_quiet(path)[0]

    def _get_quiet(self, path: str) -> tuple[int, str]:
        return http_get(self.url(path), timeout=2, quiet=True)

    def _until(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                raise AssertionError(f"{what}: exited {self.process.returncode}: {err[-2000:]}")
            time.sleep(0.02)
        raise AssertionError(f"{what} within {timeout}s")


@pytest.fixture
def run_sidecar() -> Iterator[Any]:
    """Start `run` subprocesses; all are stopped at the end of the test."""
    started: list[RunningSidecar] = []

    def start(env: Mapping[str, str], **popen: Any) -> RunningSidecar:
        sidecar = RunningSidecar(env, **popen)
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()
