"""The emulator's own container image (`make image TARGET=emulator`), proven without a builder:
the Dockerfile stage, the make target, and the image's command line run for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from entitlement_sidecar.emulator.cli import parser
from entitlement_sidecar.testing import clean_env, free_port, http_get
from tests.delivery.helm import REPO
from tests.delivery.test_dockerfile import DOCKERFILE, effective


def emulator_stage() -> dict[str, str]:
    """The emulator target's effective instructions (last one of each kind wins)."""
    return dict(effective(DOCKERFILE, "emulator"))


def test_the_stage_ships_only_the_virtualenv_as_the_numeric_user() -> None:
    """One COPY of the built virtualenv, user 65532, the CLI as entrypoint, port 9850."""
    instructions = effective(DOCKERFILE, "emulator")
    copies = [rest for keyword, rest in instructions if keyword == "COPY"]
    assert copies == ["--from=build /opt/entitlement-sidecar /opt/entitlement-sidecar"]
    stage = emulator_stage()
    assert (stage["USER"], stage["ENTRYPOINT"]) == ("65532:65532", '["entitlement-sidecar"]')
    assert "9850" in [rest for keyword, rest in instructions if keyword == "EXPOSE"]


def test_the_command_line_listens_on_all_interfaces_and_publishes_keys() -> None:
    """CMD parses with the emulator's own options: 0.0.0.0:9850, keys on the writable volume."""
    command = json.loads(emulator_stage()["CMD"])
    assert command[0] == "emulator"
    options = parser().parse_args(command[1:])
    assert (options.host, options.port) == ("0.0.0.0", 9850)  # noqa: S104 - a container
    assert str(options.public_key_dir).startswith("/var/run/entitlement/")


def test_make_image_target_emulator_names_the_image() -> None:
    """`make image TARGET=emulator` builds the emulator stage as entitlement-sidecar-emulator."""
    proc = subprocess.run(
        ["make", "-n", "image", "TARGET=emulator"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "--target emulator -t entitlement-sidecar-emulator:0.1.0" in proc.stdout


def test_the_images_command_and_health_check_work(tmp_path: Path) -> None:
    """The image's command (with a free loopback port) serves, its HEALTHCHECK command exits 0,
    and the public key is downloadable for verifiers in other containers."""
    keys = tmp_path / "keys"
    port = free_port()
    command = json.loads(emulator_stage()["CMD"])
    command = [arg.replace("0.0.0.0", "127.0.0.1").replace("9850", str(port)) for arg in command]  # noqa: S104
    command[command.index("--public-key-dir") + 1] = str(keys)
    process = subprocess.Popen(
        [sys.executable, "-m", "entitlement_sidecar", *command, "--quiet"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"listening on http://127.0.0.1:{port}"
        health = json.loads(emulator_stage()["HEALTHCHECK"].split("CMD ", 1)[1])
        probe = [sys.executable, *health[1:]]
        probe[-1] = probe[-1].replace("9850", str(port))
        assert subprocess.run(probe, timeout=30, check=False).returncode == 0
        status, pem = http_get(f"http://127.0.0.1:{port}/_emulator/keys/1.pem")
        assert (status, pem) == (200, (keys / "1.pem").read_text())
        assert http_get(f"http://127.0.0.1:{port}/_emulator/keys/..%2F1.pem")[0] == 404
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
