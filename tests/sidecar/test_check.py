"""`entitlement-sidecar check [--verify]`: what passes, what a forger tries, and garbage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.sidecar.commands import check

from .conftest import INSTANCE, PRODUCT, Signer, claims, cli, sidecar_env


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A status directory filled by a real `register` against the emulator (pod INSTANCE)."""
    status_dir = tmp_path_factory.mktemp("registered")
    with Emulator() as emu:
        keys = tmp_path_factory.mktemp("keys")
        for pem in emu.public_key_dir.iterdir():
            (keys / pem.name).write_bytes(pem.read_bytes())
        env = sidecar_env(emu, status_dir, ENTITLEMENT_PUBLIC_KEYS=str(keys))
        assert cli("register", env=env).returncode == 0
    return status_dir, env


def _copy(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("status.json", "token.jwt"):
        if (source / name).exists():
            (target / name).write_bytes((source / name).read_bytes())
    return target


@pytest.fixture
def run_check(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call check.main in-process with exactly the given environment."""

    def call(env: dict[str, str], *args: str) -> int:
        import os

        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return check.main(list(args))

    return call


def test_a_registered_instance_passes_both_checks(
    registered: tuple[Path, dict[str, str]], run_check: Any
) -> None:
    """A real registration passes `check` and `check --verify`."""
    _dir, env = registered
    assert (run_check(env), run_check(env, "--verify")) == (0, 0)


def test_check_as_a_process_prints_one_line(registered: tuple[Path, dict[str, str]]) -> None:
    """The exec-probe form: exit 0 and one line on stdout."""
    result = cli("check", "--verify", env=registered[1])
    assert (result.returncode, result.stdout.strip()) == (0, "entitled (token verified)")


def test_a_handwritten_status_passes_only_the_plain_check(
    tmp_path: Path, registered: tuple[Path, dict[str, str]], run_check: Any
) -> None:
    """`{"state": "entitled"}` written by hand fools the plain check, not --verify."""
    status.write(str(tmp_path), status.document("entitled", instance=INSTANCE, nonce="x"))
    env = {**registered[1], "ENTITLEMENT_STATUS_DIR": str(tmp_path)}
    assert (run_check(env), run_check(env, "--verify")) == (0, 1)


def test_a_status_copied_from_another_pod_is_rejected(
    tmp_path: Path, registered: tuple[Path, dict[str, str]], run_check: Any
) -> None:
    """Another pod's files fail the plain check; relabelled for this pod they fail --verify."""
    copied = _copy(registered[0], tmp_path / "copy")
    env = {**registered[1], "ENTITLEMENT_STATUS_DIR": str(copied), "POD_UID": "pod-uid-0002"}
    assert run_check(env) == 1
    doc = json.loads((copied / "status.json").read_text())
    doc["instance"] = "pod-uid-0002"
    (copied / "status.json").write_text(json.dumps(doc))
    assert (run_check(env), run_check(env, "--verify")) == (0, 1)


def test_a_token_signed_by_another_key_is_rejected(
    tmp_path: Path, registered: tuple[Path, dict[str, str]], run_check: Any, other_signer: Signer
) -> None:
    """A well-formed token for this pod, signed by a key outside the ring, fails --verify."""
    copied = _copy(registered[0], tmp_path / "forged")
    nonce = json.loads((copied / "status.json").read_text())["nonce"]
    (copied / "token.jwt").write_text(other_signer.token(claims(nonce)))
    env = {**registered[1], "ENTITLEMENT_STATUS_DIR": str(copied)}
    assert run_check(env, "--verify") == 1


@pytest.mark.parametrize(
    "damage",
    [lambda t: t[: len(t) // 2], lambda t: "", lambda t: t.replace(".", "", 1), lambda t: "\xff"],
    ids=["truncated", "empty", "two-parts", "binary"],
)
def test_a_damaged_token_file_fails_verification(
    tmp_path: Path, registered: tuple[Path, dict[str, str]], run_check: Any, damage: Any
) -> None:
    """Truncated, emptied or mangled token.jwt: --verify exits 1."""
    copied = _copy(registered[0], tmp_path / "damaged")
    token = (copied / "token.jwt").read_text().strip()
    (copied / "token.jwt").write_bytes(damage(token).encode("utf-8", "surrogateescape"))
    env = {**registered[1], "ENTITLEMENT_STATUS_DIR": str(copied)}
    assert run_check(env, "--verify") == 1


def test_a_product_code_change_fails_verification(
    registered: tuple[Path, dict[str, str]], run_check: Any
) -> None:
    """A token for another product (or an untrusted code) does not verify for this one."""
    env = registered[1]
    assert run_check({**env, "ENTITLEMENT_PRODUCT_CODE": "prod-other"}, "--verify") == 1
    trusted = {**env, "ENTITLEMENT_TRUSTED_PRODUCT_CODES": "prod-a,prod-b"}
    assert run_check(trusted, "--verify") == 1


def test_verify_without_product_code_is_a_configuration_error(
    registered: tuple[Path, dict[str, str]], run_check: Any
) -> None:
    """--verify needs the product code from the environment, not from the file: exit 2."""
    env = {k: v for k, v in registered[1].items() if k != "ENTITLEMENT_PRODUCT_CODE"}
    assert run_check(env, "--verify") == 2


def test_unknown_arguments_are_usage_errors(run_check: Any) -> None:
    """`check --frobnicate` exits 2."""
    assert run_check({}, "--frobnicate") == 2


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["version", "state", "entitled", "instance", "reason"]),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(0, 2),
                st.sampled_from(["entitled", "denied", "pending", INSTANCE, PRODUCT]),
            ),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_garbage_never_crashes_check(tmp_path: Path, run_check: Any, content: bytes) -> None:
    """Any bytes in status.json give exit 0 or 1; 0 only for a valid entitled document."""
    (tmp_path / "status.json").write_bytes(content)
    env = {"ENTITLEMENT_STATUS_DIR": str(tmp_path), "POD_UID": INSTANCE}
    code = run_check(env)
    assert code in {0, 1}
    doc = status.read(str(tmp_path))
    valid = status.is_entitled(doc) and doc is not None and doc.get("instance") == INSTANCE
    assert (code == 0) == valid
