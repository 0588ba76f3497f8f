"""The image policy: what the seller's image fixes at build time, the pod spec cannot undo.

The attacks come from the issue: a buyer who controls the pod spec sets
`ENTITLEMENT_VERIFY_SIGNATURE=false`, points the endpoint at a server of their own, mounts their
own key ring, or widens the product-code allow-list. Each runs against a real installation baked
with the release policy (its own virtualenv prefix) and a real emulator standing in for AWS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar import policy, status
from entitlement_sidecar.sidecar.rsakey import parse_spki_pem
from entitlement_sidecar.testing import (
    clean_env,
    free_port,
    http_get,
    installation,
    release_image,
    run_sidecar,
)

from .conftest import INSTANCE, PRODUCT, Signer

FIXED = {"ENTITLEMENT_VERIFY_SIGNATURE": "true", "ENTITLEMENT_PUBLIC_KEYS": "/ring"}


# --------------------------------------------------------------------------- the pure rules


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, None),
        ({"ENTITLEMENT_VERIFY_SIGNATURE": "true"}, None),
        ({"ENTITLEMENT_VERIFY_SIGNATURE": " TRUE "}, None),
        ({"ENTITLEMENT_VERIFY_SIGNATURE": ""}, None),
        ({"ENTITLEMENT_VERIFY_SIGNATURE": "false"}, "ENTITLEMENT_VERIFY_SIGNATURE"),
        ({"ENTITLEMENT_PUBLIC_KEYS": "/mine"}, "ENTITLEMENT_PUBLIC_KEYS"),
    ],
    ids=["unset", "same", "same-any-case", "blank", "verify-off", "other-ring"],
)
def test_a_fixed_setting_is_forced_and_a_different_value_refused(
    environ: dict[str, str], variable: str | None
) -> None:
    """Fixed settings take the baked value; a runtime value that differs is a named error."""
    baked = policy.Policy(policy.RELEASE, dict(FIXED), {})
    if variable is None:
        assert baked.apply(environ) == {**environ, **FIXED}
    else:
        with pytest.raises(ConfigurationError) as caught:
            baked.apply(environ)
        assert caught.value.variable == variable
        assert "fixes it to" in str(caught.value)


def test_keys_are_accepted_only_when_pinned_for_their_version() -> None:
    """A release policy accepts the pinned fingerprint of a version and nothing else."""
    baked = policy.release({1: "a" * 64})
    baked.pinned(1, "a" * 64, "/ring/1.pem")
    with pytest.raises(ConfigurationError, match="is not the key this image pins"):
        baked.pinned(1, "b" * 64, "/ring/1.pem")
    with pytest.raises(ConfigurationError, match="pins no key for public key version 2"):
        baked.pinned(2, "a" * 64, "/ring/2.pem")
    policy.Policy(policy.PERMISSIVE, {}, None).pinned(7, "c" * 64, "/any")  # pins nothing


def test_an_installation_without_a_policy_is_release_with_nothing_pinned(tmp_path: Path) -> None:
    """No policy file: verification fixed on, the default ring, and no key accepted."""
    unbaked = policy.load(str(tmp_path / "absent.json"))
    assert (unbaked.profile, unbaked.pinned_keys) == (policy.RELEASE, {})
    assert unbaked.fixed["ENTITLEMENT_VERIFY_SIGNATURE"] == "true"


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"version": 2, "profile": "release", "fixed": {}, "pinned_keys": {}}),
        json.dumps({"version": 1, "profile": "lax", "fixed": {}, "pinned_keys": {}}),
        json.dumps({"version": 1, "profile": "release", "fixed": {}, "pinned_keys": None}),
        json.dumps({"version": 1, "profile": "release", "fixed": {"X": "1"}, "pinned_keys": {}}),
        json.dumps({"version": 1, "profile": "release", "fixed": {}, "pinned_keys": {"a": "f"}}),
    ],
    ids=["garbage", "version-2", "unknown-profile", "release-unpinned", "foreign-name", "pin-key"],
)
def test_a_damaged_policy_file_fails_closed(tmp_path: Path, document: str) -> None:
    """A policy file that is not a valid version-1 policy stops the sidecar: it never fails open."""
    path = tmp_path / "policy.json"
    path.write_text(document)
    with pytest.raises(ConfigurationError, match=r"image policy .* is unusable"):
        policy.load(str(path))


# ----------------------------------------------------------------------------- bake


def _bake(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    from entitlement_sidecar.sidecar.commands import policy as command

    out = tmp_path / "policy.json"
    code = command.main(["bake", *args, "--output", str(out)])
    return (
        code,
        out.read_text() if out.exists() else "",
        (json.loads(out.read_text()) if out.exists() else {}),
    )


def test_release_bake_pins_every_versioned_key_and_fixes_the_ring(
    tmp_path: Path, signer: Signer, other_signer: Signer
) -> None:
    """Every `<n>.pem` is pinned by fingerprint; other files are ignored; the ring path is fixed."""
    ring = signer.write_ring(tmp_path / "ring", 1)
    other_signer.write_ring(ring, 2)
    (ring / "README.md").write_text("not a key")
    code, _text, baked = _bake(
        tmp_path,
        *("--profile", "release", "--keys", str(ring)),
        *("--set", "ENTITLEMENT_TRUSTED_PRODUCT_CODES=prod-paid"),
    )
    assert code == 0
    assert baked["pinned_keys"] == {
        "1": parse_spki_pem(signer.public_pem()).fingerprint,
        "2": parse_spki_pem(other_signer.public_pem()).fingerprint,
    }
    assert baked["fixed"] == {
        "ENTITLEMENT_VERIFY_SIGNATURE": "true",
        "ENTITLEMENT_PUBLIC_KEYS": str(ring),
        "ENTITLEMENT_TRUSTED_PRODUCT_CODES": "prod-paid",
        **dict.fromkeys(policy.LICENSE_DECISIONS, ""),  # License Manager mode stays off
    }
    assert baked["pinned_token_key"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "ENTITLEMENT_VERIFY_SIGNATURE=false"), "always verifies"),
        (("--set", "ENTITLEMENT_PUBLIC_KEYS=/x"), "use --keys"),
        (("--set", "ENTITLEMENT_TRUSTED_PRODUCT_CODE=a"), "ENTITLEMENT_TRUSTED_PRODUCT_CODES"),
        (("--set", "ENTITLEMENT_PORT=0"), "ENTITLEMENT_PORT"),
        (("--set", "PORT=1"), "ENTITLEMENT_NAME=VALUE"),
        (("--keys", "/nonexistent/ring"), "/nonexistent/ring"),
    ],
    ids=["verify-off", "ring-by-set", "misspelt", "invalid-value", "no-prefix", "no-ring"],
)
def test_release_bake_refuses_what_would_not_load(
    tmp_path: Path,
    signer: Signer,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    """A bake that would produce a policy the sidecar cannot honour fails at build time (exit 2)."""
    ring = signer.write_ring(tmp_path / "ring", 1)
    code, text, _baked = _bake(tmp_path, "--profile", "release", "--keys", str(ring), *args)
    assert (code, text) == (2, "")
    assert message in capsys.readouterr().err


def test_release_bake_refuses_a_private_key_in_the_ring(tmp_path: Path, signer: Signer) -> None:
    """A private key copied into the ring stops the image build, naming the leak."""
    from cryptography.hazmat.primitives import serialization

    ring = tmp_path / "ring"
    ring.mkdir()
    (ring / "1.pem").write_bytes(
        signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert _bake(tmp_path, "--profile", "release", "--keys", str(ring))[0] == 2


# ------------------------------------------------------- a release image under attack


class Image:
    """A release installation baked against `aws`'s key ring, and how to run its commands."""

    def __init__(self, aws: Emulator, python: str, ring: Path) -> None:
        self.aws = aws
        self.python = python
        self.ring = ring

    def env(
        self, status_dir: Path, endpoint: Emulator | None = None, **extra: str
    ) -> dict[str, str]:
        values = {
            **(endpoint or self.aws).env(access_key_id="AKIDPOD1"),
            "ENTITLEMENT_PRODUCT_CODE": PRODUCT,
            "ENTITLEMENT_STATUS_DIR": str(status_dir),
            "ENTITLEMENT_BACKOFF_INITIAL": "0.05",
            "ENTITLEMENT_STARTUP_TIMEOUT": "10",
            "POD_UID": INSTANCE,
            **extra,
        }
        return clean_env(**values)

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return run_sidecar(self.python, *args, env=env)


def _release_image(directory: Path, aws: Emulator) -> Image:
    python, ring = release_image(
        directory, aws.public_key_dir, "--set", f"ENTITLEMENT_TRUSTED_PRODUCT_CODES={PRODUCT}"
    )
    return Image(aws, python, ring)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The seller's release image, and the real AWS (an emulator) whose key it pins."""
    with Emulator() as aws:
        yield _release_image(tmp_path_factory.mktemp("image"), aws)


@pytest.fixture(scope="module")
def impostor() -> Iterator[Emulator]:
    """A server of the buyer's: it answers RegisterUsage with tokens signed by its own key."""
    with Emulator() as fake:
        yield fake


def test_the_release_image_registers_and_verifies_against_the_pinned_key(
    image: Image, tmp_path: Path
) -> None:
    """The genuine path still works: register 0, then check and check --verify 0."""
    env = image.env(tmp_path)
    assert image.run("register", env=env).returncode == 0
    assert [image.run("check", *a, env=env).returncode for a in ((), ("--verify",))] == [0, 0]


@pytest.mark.parametrize("command", ["register", "run", "check"], ids=["register", "run", "check"])
def test_switching_verification_off_is_refused_by_every_command(
    image: Image, impostor: Emulator, tmp_path: Path, command: str
) -> None:
    """`ENTITLEMENT_VERIFY_SIGNATURE=false` plus a fake endpoint: exit 2 naming the variable."""
    impostor.reset()
    env = image.env(
        tmp_path, impostor, ENTITLEMENT_VERIFY_SIGNATURE="false", ENTITLEMENT_PORT=str(free_port())
    )
    done = image.run(command, env=env)
    assert done.returncode == 2
    assert "ENTITLEMENT_VERIFY_SIGNATURE='false'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not status.is_entitled(status.read(str(tmp_path)))
    assert impostor.records()["requests"].get("RegisterUsage", 0) == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENTITLEMENT_PUBLIC_KEYS", "impostor"),
        ("ENTITLEMENT_TRUSTED_PRODUCT_CODES", f"{PRODUCT},prod-free"),
    ],
    ids=["own-key-ring", "wider-allow-list"],
)
def test_a_runtime_key_ring_or_allow_list_is_refused(
    image: Image, impostor: Emulator, tmp_path: Path, variable: str, value: str
) -> None:
    """Pointing the ring at the buyer's keys, or widening the allow-list: exit 2 naming it."""
    value = str(impostor.public_key_dir) if value == "impostor" else value
    done = image.run("register", env=image.env(tmp_path, impostor, **{variable: value}))
    assert (done.returncode, f"{variable}=" in done.stderr) == (2, True)


def test_a_fake_endpoint_cannot_produce_a_valid_token(
    image: Image, impostor: Emulator, tmp_path: Path
) -> None:
    """The endpoint override stays (VPC endpoints), but a token not signed by AWS is denied."""
    env = image.env(tmp_path, impostor)
    done = image.run("register", env=env)
    doc = status.read(str(tmp_path)) or {}
    assert (done.returncode, doc.get("state"), doc.get("reason")) == (
        1,
        "denied",
        "SignatureInvalid",
    )
    assert image.run("check", env=env).returncode == 1


def test_a_free_product_code_is_denied_before_calling_aws(image: Image, tmp_path: Path) -> None:
    """A product code outside the baked allow-list is denied without a RegisterUsage call."""
    env = image.env(tmp_path, ENTITLEMENT_PRODUCT_CODE="prod-free")
    done = image.run("register", env=env)
    doc = status.read(str(tmp_path)) or {}
    assert (done.returncode, doc.get("reason"), doc.get("attempts")) == (
        1,
        "UntrustedProductCode",
        0,
    )


def test_a_key_ring_mounted_over_the_image_s_is_refused(tmp_path: Path, impostor: Emulator) -> None:
    """A ConfigMap over the baked ring holding the buyer's key: exit 2, not the pinned key."""
    impostor.reset()
    with Emulator() as aws:
        image = _release_image(tmp_path / "image", aws)
        shutil.copy(impostor.public_key_dir / "1.pem", image.ring / "1.pem")  # the mount
        status_dir = tmp_path / "status"
        status_dir.mkdir()
        done = image.run("register", env=image.env(status_dir, impostor))
        verify = image.run("check", "--verify", env=image.env(status_dir, impostor))
    assert done.returncode == 2
    assert "is not the key this image pins for version 1" in done.stderr
    assert verify.returncode == 2
    assert impostor.records()["requests"].get("RegisterUsage", 0) == 0


def test_an_image_nobody_baked_refuses_every_key(tmp_path: Path, emulator: Emulator) -> None:
    """Without a policy the sidecar is release with no pinned key, and says how to bake one."""
    python = installation(tmp_path / "venv")
    image = Image(emulator, python, tmp_path)
    env = image.env(tmp_path / "status")
    (tmp_path / "status").mkdir()
    env.pop("ENTITLEMENT_PUBLIC_KEYS", None)
    done = image.run("register", env=env)
    assert done.returncode == 2
    assert "pins no key for public key version 1" in done.stderr
    assert "entitlement-sidecar policy bake" in done.stderr


def test_run_of_the_release_image_becomes_ready(image: Image, tmp_path: Path) -> None:
    """`run` (parent and child both under the policy) gets ready with the pinned key."""
    port = free_port()
    env = image.env(tmp_path, ENTITLEMENT_PORT=str(port))
    process = subprocess.Popen(
        [image.python, "-m", "entitlement_sidecar", "run"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if http_get(f"http://127.0.0.1:{port}/readyz", timeout=1, quiet=True)[0] == 200:
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        else:
            pytest.fail("the release image never became ready")
    finally:
        process.terminate()
        process.wait(10)
