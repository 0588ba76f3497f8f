"""The intake over real sockets: answers, loopback only, hostile and crowded clients, its bound."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from entitlement_sidecar.sidecar.usage.client import parse, request
from entitlement_sidecar.testing import ShiftedClock, free_port, http_get

from .conftest import H10, HOUR, UsageSidecar, wait_for

Make = Callable[..., UsageSidecar]


@pytest.fixture
def sidecar(usage_sidecar: Make) -> UsageSidecar:
    return usage_sidecar().start()


def raw(port: int, data: bytes, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = parse(b"".join(chunks))
    return reply.status, reply.headers, reply.body


def post(body: bytes, *headers: str) -> bytes:
    head = ["POST /v1/usage HTTP/1.1", "Host: 127.0.0.1", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_answers_say_what_was_counted_and_which_field_is_wrong(sidecar: UsageSidecar) -> None:
    """202 with counts, 400 problem naming the field (nothing of a bad batch is counted)."""
    batch = {"events": [{"dimension": "gb", "quantity": "1", "id": f"b{n}"} for n in range(100)]}
    reply = sidecar.post(batch)
    assert (reply.status, json.loads(reply.body)) == (
        202,
        {"accepted": 100, "duplicates": 0, "carried": 0},
    )
    assert json.loads(sidecar.post(batch).body)["duplicates"] == 100
    bad = {"events": [{"dimension": "gb", "quantity": "1"}, {"dimension": "gb", "quantity": "x"}]}
    reply = sidecar.post(bad)
    problem = json.loads(reply.body)
    assert (reply.status, reply.headers["content-type"]) == (400, "application/problem+json")
    assert (problem["status"], problem["field"]) == (400, "events[1].quantity")
    assert sidecar.view()["totals"] == {"gb": "100", "jobs": "0"}


def test_the_intake_listens_on_loopback_only(shared_sidecar: UsageSidecar) -> None:
    """Its socket is bound to 127.0.0.1; the probe port is the one on every interface."""
    sidecar = shared_sidecar
    assert sidecar.process is not None
    listening = {
        c.laddr.port: c.laddr.ip
        for c in psutil.Process(sidecar.process.pid).net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening[sidecar.usage_port] == "127.0.0.1"
    assert listening[sidecar.port] in {"::", "0.0.0.0"}  # noqa: S104 - what the probe port binds


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (post(b"{}", "Content-Type: text/plain"), 415),
        (post(b"{}", "Content-Type: application/x-www-form-urlencoded"), 415),
        (post(b"{}", "Content-Type: application/json").replace(b"127.0.0.1", b"evil.example"), 403),
        (b"OPTIONS /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
        (b"DELETE /v1/usage HTTP/1.1\r\nHost: localhost\r\n\r\n", 405),
        (b"GET /v1/other HTTP/1.1\r\nHost: localhost\r\n\r\n", 404),
        (post(b"", "Content-Type: application/json", "Transfer-Encoding: chunked"), 411),
        (
            b"POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n",
            411,
        ),
        (post(b"x" * 300_000, "Content-Type: application/json"), 413),
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /v1/usage HTTP/1.1\r\nbroken header line\r\n\r\n", 400),
    ],
    ids=[
        "text-plain",
        "form",
        "foreign-host",
        "options-preflight",
        "delete",
        "other-path",
        "chunked",
        "no-length",
        "too-large",
        "garbage",
        "bad-header",
    ],
)
def test_requests_a_browser_page_or_a_broken_client_sends_are_refused(
    shared_sidecar: UsageSidecar, data: bytes, status: int
) -> None:
    """No CORS-simple request, no DNS-rebinding Host, no body we cannot bound: one status each."""
    assert raw(shared_sidecar.usage_port, data)[0] == status
    assert shared_sidecar.view()["totals"] == {"gb": "0", "jobs": "0"}


def test_expect_100_continue_is_honoured(sidecar: UsageSidecar) -> None:
    """curl's `Expect: 100-continue` gets the go-ahead at once instead of waiting a second."""
    body = json.dumps({"dimension": "jobs", "quantity": "2"}).encode()
    head = post(b"", "Content-Type: application/json", "Expect: 100-continue")
    head = head.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    with socket.create_connection(("127.0.0.1", sidecar.usage_port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(100).startswith(b"HTTP/1.0 202")


def test_a_full_journal_answers_429_until_the_next_seal(
    usage_sidecar: Make, clock: ShiftedClock
) -> None:
    """Past its bound, nothing is acknowledged: 429 with Retry-After, a metric, then room again."""
    sidecar = usage_sidecar(ENTITLEMENT_USAGE_JOURNAL_BYTES="65536").start()
    batch = [{"dimension": "gb", "quantity": "1", "id": f"{'x' * 40}-{n}"} for n in range(1200)]
    replies = [sidecar.post({"events": batch[n::3]}) for n in range(3)]
    statuses = [r.status for r in replies]
    assert statuses[:1] == [202]
    assert 429 in statuses
    full = replies[statuses.index(429)]
    assert 1850 <= int(full.headers["retry-after"]) <= HOUR + 60 - 1800  # 10:30 -> 11:01 seal
    assert "ENTITLEMENT_USAGE_JOURNAL_BYTES" in json.loads(full.body)["detail"]
    assert "entitlement_sidecar_usage_journal_full 1" in sidecar.metrics()
    assert sidecar.status()["journal"]["full"] is True
    accepted = sum(json.loads(r.body)["accepted"] for r in replies if r.status == 202)
    assert sidecar.view()["totals"]["gb"] == str(accepted)
    clock.jump_to(H10 + HOUR + 61)
    wait_for(lambda: sidecar.add("gb", "1").status == 202, what="room after the seal")
    assert "entitlement_sidecar_usage_journal_full 0" in sidecar.metrics()


@pytest.fixture
def idle_crowd(sidecar: UsageSidecar) -> Iterator[list[socket.socket]]:
    """300 connections to the intake that never send a request, and 50 that send a byte a second."""
    crowd: list[socket.socket] = []
    try:
        for n in range(350):
            sock = socket.create_connection(("127.0.0.1", sidecar.usage_port), timeout=5)
            if n >= 300:
                sock.sendall(b"P")
            crowd.append(sock)
        yield crowd
    finally:
        for sock in crowd:
            sock.close()


def test_idle_and_slow_intake_clients_starve_neither_the_probes_nor_the_app(
    sidecar: UsageSidecar, idle_crowd: list[socket.socket]
) -> None:
    """A local crowd on the intake port: /livez stays quick and the app's POST still lands."""
    begun = time.monotonic()
    assert http_get(f"http://127.0.0.1:{sidecar.port}/livez", 2)[0] == 200
    assert time.monotonic() - begun < 1.0
    assert sidecar.add("gb", "1", "through-the-crowd").status == 202
    assert sidecar.alive()


def test_the_unix_socket_takes_usage_too(usage_sidecar: Make, tmp_path: Path) -> None:
    """ECS bridge mode: the app posts on a socket in the shared volume; it is gone after stop."""
    path = str(tmp_path / "status" / "usage.sock")
    sidecar = usage_sidecar(ENTITLEMENT_USAGE_SOCKET=path).start()
    body = json.dumps({"dimension": "jobs", "quantity": "4", "id": "u1"}).encode()
    reply = request("POST", "/v1/usage", body, unix=path)
    assert (reply.status, json.loads(reply.body)["accepted"]) == (202, 1)
    assert sidecar.view()["totals"]["jobs"] == "4"
    assert sidecar.stop() == 0
    assert not Path(path).exists()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "usage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_usage_add_for_shell_based_apps(sidecar: UsageSidecar) -> None:
    """`usage add` posts one event: 0 recorded, 1 not recorded (why on stderr), 2 bad usage."""
    env = sidecar.env
    done = cli("add", "gb", "2.5", "--id", "sh-1", "--tag", "team=ops", env=env)
    assert (done.returncode, json.loads(done.stdout)["accepted"]) == (0, 1), done.stderr
    again = cli("add", "gb", "2.5", "--id", "sh-1", "--tag", "team=ops", env=env)
    assert json.loads(again.stdout)["duplicates"] == 1
    squatted = cli("add", "gb", "0", "--id", "sh-1", env=env)
    assert (squatted.returncode, "HTTP 409" in squatted.stderr) == (1, True)
    refused = cli("add", "tb", "1", env=env)
    assert refused.returncode == 1
    assert "not recorded: HTTP 400" in refused.stderr
    assert "dimension" in refused.stderr
    shown = cli("show", env=env)
    assert json.loads(shown.stdout)["totals"]["gb"] == "2.5"
    elsewhere = cli("add", "gb", "1", "--port", str(free_port()), env=env)
    assert elsewhere.returncode == 1
    assert "no usage intake at 127.0.0.1" in elsewhere.stderr
    assert cli("add", "gb", env=env).returncode == 2
    assert cli("add", "gb", "1", "--port", "0", env=env).returncode == 2
    assert cli("add", "gb", "1", "--tag", "novalue", env=env).returncode == 2


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"ENTITLEMENT_USAGE_PORT": "same"}, "ENTITLEMENT_USAGE_PORT"),
        ({"ENTITLEMENT_USAGE_DIMENSIONS": "a,a"}, "ENTITLEMENT_USAGE_DIMENSIONS"),
        ({"ENTITLEMENT_USAGE_TAG_KEYS": "a,b,c,d,e,f"}, "ENTITLEMENT_USAGE_TAG_KEYS"),
        ({"ENTITLEMENT_USAGE_JOURNAL_BYTES": "1000"}, "ENTITLEMENT_USAGE_JOURNAL_BYTES"),
        ({"ENTITLEMENT_USAGE_SEND_JITTER": "nan"}, "ENTITLEMENT_USAGE_SEND_JITTER"),
        ({"ENTITLEMENT_USAGE_SOCKET": "relative.sock"}, "ENTITLEMENT_USAGE_SOCKET"),
        ({"ENTITLEMENT_USAGE_PORT": "taken"}, "ENTITLEMENT_USAGE_PORT"),
    ],
    ids=["probe-port", "twice", "six-tag-keys", "tiny-journal", "nan-jitter", "relative", "in-use"],
)
def test_a_bad_usage_setting_stops_run_with_exit_2_naming_it(
    sidecar_env: dict[str, str], extra: dict[str, str], variable: str
) -> None:
    """Exit 2 and one line naming the variable, before anything is bound."""
    env = {**sidecar_env, **extra}
    holder = socket.create_server(("127.0.0.1", 0))
    if env["ENTITLEMENT_USAGE_PORT"] == "same":
        env["ENTITLEMENT_USAGE_PORT"] = env["ENTITLEMENT_PORT"]
    if env["ENTITLEMENT_USAGE_PORT"] == "taken":
        env["ENTITLEMENT_USAGE_PORT"] = str(holder.getsockname()[1])
    with holder:
        done = subprocess.run(
            [sys.executable, "-m", "entitlement_sidecar", "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert variable in done.stderr
    assert "Traceback" not in done.stderr


def test_a_second_sidecar_on_the_same_status_volume_is_refused(
    sidecar: UsageSidecar, usage_sidecar: Make
) -> None:
    """Two writers would interleave one journal: the second `run` exits 2 naming the volume."""
    other = usage_sidecar(
        ENTITLEMENT_PORT=str(free_port()), ENTITLEMENT_USAGE_PORT=str(free_port())
    )
    other.start(wait=False)
    assert other.process is not None
    assert other.process.wait(60) == 2
    assert "ENTITLEMENT_STATUS_DIR" in other.log()
    assert "kept by another running sidecar" in other.log()
    assert sidecar.add("gb", "1").status == 202  # the first one goes on


def test_without_dimensions_there_is_no_intake(usage_sidecar: Make) -> None:
    """Intake off: nothing listens on the usage port, /status and /metrics carry no usage."""
    sidecar = usage_sidecar(ENTITLEMENT_USAGE_DIMENSIONS="")
    sidecar.start(wait=False)
    wait_for(
        lambda: http_get(f"http://127.0.0.1:{sidecar.port}/readyz", 2, quiet=True)[0] == 200,
        what="ready",
    )
    with pytest.raises(ConnectionRefusedError):
        sidecar.get()
    assert "usage" not in json.loads(http_get(f"http://127.0.0.1:{sidecar.port}/status")[1])
    assert "entitlement_sidecar_usage_" not in sidecar.metrics()
