"""One clear line for every mistake, and one log format for every process.

Each mistake a newcomer makes (a malformed endpoint, a port in use, a misspelt variable, a
number that is not one, Ctrl-C) gets one line naming it and a documented exit code, and leaves a
status that says what happened. The parent `run` process, its registration child and the
configuration-error path write the same JSON keys with the same time format, or the same text.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar import registration, status
from entitlement_sidecar.sidecar.settings import SidecarSettings
from entitlement_sidecar.testing import free_port

from .conftest import PRODUCT, cli, sidecar_env

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
TEXT_LINE = re.compile(rf"^{TIME} (DEBUG|INFO|WARNING|ERROR|CRITICAL) entitlement_sidecar[.\w]*: ")
KEYS = ["time", "level", "logger", "message"]


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line parsed as a JSON log line with our keys first, in order."""
    lines = [json.loads(line) for line in stderr.splitlines()]
    for line in lines:
        assert list(line)[:4] == KEYS, line
        assert re.fullmatch(TIME, line["time"]), line
    return lines


def _start(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`entitlement-sidecar COMMAND` as a process whose stderr the test reads."""
    return subprocess.Popen(
        [sys.executable, "-m", "entitlement_sidecar", command],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


# (scenario, extra env, exit code, the variable a configuration error names, final state)
EXITS: list[tuple[dict[str, Any] | None, dict[str, str], int, str | None, str | None]] = [
    (None, {}, 0, None, "entitled"),
    ({"products": {PRODUCT: {"entitled": False}}}, {}, 1, None, "denied"),
    (None, {"ENTITLEMENT_PRODUCT_CODE": "prod-free", "ENTITLEMENT_TRUSTED_PRODUCT_CODES": PRODUCT},
     1, None, "denied"),
    ({"products": {PRODUCT: {"sign_with_unlisted_key": True}}}, {}, 1, None, "denied"),
    (None, {"ENTITLEMENT_PRODUCT_CODE": ""}, 2, "ENTITLEMENT_PRODUCT_CODE", None),
    (None, {"ENTITLEMENT_STARTUP_TIMEOUT": "nan"}, 2, "ENTITLEMENT_STARTUP_TIMEOUT", None),
    (None, {"ENTITLEMENT_LOG_FORMAT": "xml"}, 2, "ENTITLEMENT_LOG_FORMAT", None),
    (None, {"AWS_ENDPOINT_URL_MARKETPLACE_METERING": "localhost:4566"}, 2,
     "AWS_ENDPOINT_URL_MARKETPLACE_METERING", "denied"),
    (None, {"AWS_ENDPOINT_URL_MARKETPLACE_METERING": "http://127.0.0.1:99999"}, 2,
     "AWS_ENDPOINT_URL_MARKETPLACE_METERING", "denied"),
    (None, {"AWS_REGION": "moon", "AWS_DEFAULT_REGION": ""}, 2, "AWS_REGION", "denied"),
    (None, {"ENTITLEMENT_STATUS_DIR": "/nonexistent/status"}, 2, "ENTITLEMENT_STATUS_DIR", None),
    ({"products": {PRODUCT: {}}, "faults": [{"op": "RegisterUsage", "kind": "internal_error"}]},
     {"ENTITLEMENT_STARTUP_TIMEOUT": "0.5"}, 3, None, "unavailable"),
    ({"products": {PRODUCT: {}}, "faults": [{"op": "RegisterUsage", "kind": "throttle"}]},
     {"ENTITLEMENT_STARTUP_TIMEOUT": "0.5"}, 3, None, "unavailable"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("scenario", "extra", "code", "variable", "state"),
    EXITS,
    ids=[
        "entitled-0",
        "denied-1",
        "untrusted-code-1",
        "forged-token-1",
        "no-product-code-2",
        "timeout-nan-2",
        "log-format-2",
        "endpoint-not-a-url-2",
        "endpoint-port-2",
        "region-2",
        "status-dir-2",
        "5xx-until-budget-3",
        "throttled-until-budget-3",
    ],
)
def test_every_ending_of_register_is_a_documented_code_with_a_consistent_status(  # noqa: PLR0917
    tmp_path: Path,
    scenario: dict[str, Any] | None,
    extra: dict[str, str],
    code: int,
    variable: str | None,
    state: str | None,
) -> None:
    """`register` exits 0/1/2/3 as documented; a configuration error is ONE line naming the
    variable; the status it leaves is never `pending` and says the outcome."""
    with Emulator(scenario) as emu:
        env = sidecar_env(emu, tmp_path, **{"ENTITLEMENT_LOG_FORMAT": "json", **extra})
        result = cli("register", env=env)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    if variable is not None:
        errors = [line for line in result.stderr.splitlines() if "invalid configuration" in line]
        assert len(errors) == 1, result.stderr
        assert json.loads(errors[0])["variable"] == variable
    doc = status.read(str(tmp_path))
    assert (doc or {}).get("state") == state


def test_the_reason_for_a_failed_configuration_is_in_the_status(tmp_path: Path) -> None:
    """A malformed endpoint URL leaves `denied` / `InvalidConfiguration` naming it, not pending."""
    with Emulator() as emu:
        env = sidecar_env(emu, tmp_path, AWS_ENDPOINT_URL_MARKETPLACE_METERING="not a url")
        assert cli("register", env=env).returncode == 2
    doc = status.read(str(tmp_path)) or {}
    assert (doc["state"], doc["reason"]) == ("denied", "InvalidConfiguration")
    assert "AWS_ENDPOINT_URL_MARKETPLACE_METERING" in doc["message"]


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_an_interrupted_register_says_so_once_and_leaves_unavailable(
    tmp_path: Path, signum: int, code: int
) -> None:
    """Ctrl-C (or SIGTERM) while RegisterUsage hangs: one line, exit 130 (143), and the pending
    status becomes `unavailable` / `Interrupted`, so the next start tries again."""
    scenario = {"products": {PRODUCT: {}}, "faults": [{"op": "RegisterUsage", "kind": "hold"}]}
    with Emulator(scenario) as emu:
        process = _start("register", env=sidecar_env(emu, tmp_path, ENTITLEMENT_LOG_LEVEL="ERROR"))
        emu.wait_held(1, timeout=30)  # the call is at "AWS", unanswered
        process.send_signal(signum)
        _out, err = process.communicate(timeout=30)
        emu.release()
    assert process.returncode == code
    (line,) = err.strip().splitlines()
    assert json.loads(line)["message"].startswith(f"interrupted by {signal.Signals(signum).name}")
    doc = status.read(str(tmp_path)) or {}
    assert (doc["state"], doc["reason"]) == ("unavailable", "Interrupted")


def test_an_interruption_never_overwrites_a_final_denial(tmp_path: Path) -> None:
    """Interrupted after a denial was recorded (a restart of a denied pod): the denial stays."""
    from entitlement_sidecar.sidecar.outcome import REAL_CLOCK, Report

    denied = status.document("denied", reason="CustomerNotEntitledException", attempts=1)
    status.write(str(tmp_path), denied)
    Report(str(tmp_path), {"product_code": PRODUCT}, REAL_CLOCK).interrupted()
    assert status.read(str(tmp_path)) == denied


def test_an_unexpected_error_ends_unavailable_with_exit_3(tmp_path: Path) -> None:
    """A bug inside the registration ends as status `RegistrationFailed` and exit 3, not a
    traceback with exit 1 (which means "denied")."""

    def broken_client(region: str) -> Any:
        raise RuntimeError(f"bug while building a client for {region}")

    settings = SidecarSettings(product_code=PRODUCT, status_dir=tmp_path, verify_signature=False)
    environ = {"POD_UID": "p1", "AWS_REGION": "us-east-1"}
    assert registration.register(settings, environ, make_client=broken_client) == 3
    doc = status.read(str(tmp_path)) or {}
    assert (doc["state"], doc["reason"]) == ("unavailable", "RegistrationFailed")
    assert "RuntimeError" in doc["message"]


def test_retry_lines_name_the_endpoint_that_failed(tmp_path: Path) -> None:
    """Each retry warning says which endpoint host failed, not only the error code."""
    scenario = {
        "products": {PRODUCT: {}},
        "faults": [{"op": "RegisterUsage", "kind": "internal_error", "count": 2}],
    }
    with Emulator(scenario) as emu:
        result = cli("register", env=sidecar_env(emu, tmp_path))
        host = emu.url.removeprefix("http://")
    assert result.returncode == 0
    retries = [line for line in json_lines(result.stderr) if "retry" in line["message"]]
    assert len(retries) == 2
    assert all(line["endpoint"] == host and host in line["message"] for line in retries)


def test_a_misspelt_variable_is_named_with_the_closest_setting(tmp_path: Path) -> None:
    """`ENTITLEMENT_PRODUCTCODE` (a typo) is warned about, naming ENTITLEMENT_PRODUCT_CODE."""
    with Emulator() as emu:
        env = sidecar_env(emu, tmp_path, ENTITLEMENT_STARTUP_TIMOUT="60")
        result = cli("register", env=env)
    assert result.returncode == 0
    (warning,) = [line for line in json_lines(result.stderr) if "not a setting" in line["message"]]
    assert (warning["variable"], warning["closest"]) == (
        "ENTITLEMENT_STARTUP_TIMOUT",
        "ENTITLEMENT_STARTUP_TIMEOUT",
    )


def test_check_verify_without_a_product_code_is_a_configuration_error(tmp_path: Path) -> None:
    """`check --verify` with no ENTITLEMENT_PRODUCT_CODE exits 2 (as documented), not 1."""
    with Emulator() as emu:
        env = sidecar_env(emu, tmp_path, ENTITLEMENT_PRODUCT_CODE="")
    result = cli("check", "--verify", env=env)
    assert result.returncode == 2
    assert json.loads(result.stderr)["variable"] == "ENTITLEMENT_PRODUCT_CODE"


@pytest.mark.parametrize(
    ("problem", "variable"),
    [("missing-product", "ENTITLEMENT_PRODUCT_CODE"), ("port-taken", "ENTITLEMENT_PORT")],
    ids=["missing-product", "port-taken"],
)
def test_run_says_one_line_and_only_that(
    emulator: Emulator, tmp_path: Path, problem: str, variable: str
) -> None:
    """`run` with no product code, or with its port taken, prints that one line and nothing
    else (no child output, no 'stopping' or 'failed' lines after it)."""
    with socket.create_server(("0.0.0.0", 0)) as taken:  # noqa: S104 - same bind as the sidecar
        port = taken.getsockname()[1] if problem == "port-taken" else free_port()
        extra = {"ENTITLEMENT_PRODUCT_CODE": ""} if problem == "missing-product" else {}
        env = sidecar_env(emulator, tmp_path, ENTITLEMENT_PORT=str(port), **extra)
        result = cli("run", env=env, timeout=30)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert json.loads(line)["variable"] == variable


@pytest.mark.parametrize("fmt", ["json", "text"], ids=["json", "text"])
def test_parent_child_and_configuration_errors_share_one_log_format(
    emulator: Emulator, tmp_path: Path, fmt: str
) -> None:
    """Lines of `run`'s parent and of its registration child, and a configuration error, all
    have the same shape in `json` (same keys, same time format) and in `text`."""
    port = free_port()
    env = sidecar_env(emulator, tmp_path, ENTITLEMENT_PORT=str(port), ENTITLEMENT_LOG_FORMAT=fmt)
    process = _start("run", env=env)
    deadline = time.monotonic() + 60
    while status.read(str(tmp_path)) is None or not status.is_entitled(status.read(str(tmp_path))):
        assert time.monotonic() < deadline, "never entitled"
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=30)
    broken = cli("register", env={**env, "ENTITLEMENT_PORT": "http"}).stderr
    lines = err.splitlines() + broken.splitlines()
    if fmt == "json":
        parsed = json_lines("\n".join(lines))
        loggers = {line["logger"] for line in parsed}
    else:
        assert all(TEXT_LINE.match(line) for line in lines), lines
        loggers = {line.split(" ")[2].rstrip(":") for line in lines}
    assert {"entitlement_sidecar.run", "entitlement_sidecar.sidecar.registration"} <= loggers
    assert "entitlement_sidecar.register" in loggers  # the configuration error
