"""The HTTP side: a threaded stdlib server on loopback, and the in-process `Emulator` API.

The handler only moves bytes: it caps and reads the body (with a socket timeout, so a slow or
silent client cannot hang a thread forever), routes `/_emulator/*` introspection, and hands API
requests to `Service.handle`. `Emulator` is the context manager tests, the demo and benchmarks use.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from entitlement_sidecar.emulator.apis import JSON_APIS, JsonApi
from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.request import Outcome, Request, request_id
from entitlement_sidecar.emulator.scenario import ScenarioError
from entitlement_sidecar.emulator.service import ScenarioSource, Service

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # BatchMeterUsage requests must be under 1 MB
DRAIN_LIMIT = 16 * MAX_BODY  # read and discard at most this much of an oversized body
SOCKET_TIMEOUT = 30.0
DUMMY_SECRET = "emulator-secret-not-checked"  # noqa: S105 (checked only for scenario `callers`)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT
    # One send per answer, no Nagle: otherwise headers and body go out as two segments and the
    # client's delayed ACK adds ~40 ms to every request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator's callers print what they need."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/_emulator/records":
            self._send(200, json.dumps(self.server.service.records()).encode(), "application/json")
        elif path == "/_emulator/licenses":
            body = json.dumps({"licenses": self.server.service.licenses()}).encode()
            self._send(200, body, "application/json")
        elif path == "/_emulator/health":
            self._send(200, b'{"status": "ok"}', "application/json")
        elif path.startswith("/_emulator/keys/"):
            self._send_key(path.removeprefix("/_emulator/keys/"))
        elif path == "/_emulator/held":
            held = json.dumps({"held": self.server.service.holds.held}).encode()
            self._send(200, held, "application/json")
        else:
            self._no_route("GET", path)

    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        path, _, query = self.path.partition("?")
        service = self.server.service
        if path == "/_emulator/reset":
            service.reset()
            self._send(200, b'{"reset": true}', "application/json")
        elif path == "/_emulator/scenario":
            self._swap_scenario(raw)
        elif path == "/_emulator/release":
            released = json.dumps({"released": service.holds.release()}).encode()
            self._send(200, released, "application/json")
        elif path.startswith("/_emulator/"):
            self._no_route("POST", path)
        else:  # AWS services answer on any path; SigV4 signs the one the client used
            headers = tuple((str(name), str(value)) for name, value in self.headers.items())
            self._answer(service.handle(Request("POST", path, query, headers, raw)))

    def _swap_scenario(self, raw: bytes) -> None:
        try:
            data = json.loads(raw or b"null")
            if isinstance(data, dict) and data.get("key_files"):
                # Over HTTP (a container's port) a client must not make the emulator read files
                # of its choosing; key files come from a scenario file or the Python API.
                raise ScenarioError("scenario key key_files: not accepted over HTTP")
            self.server.service.set_scenario(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            self._error(ApiError("SerializationException", f"Malformed JSON scenario: {exc!r}"))
        except ScenarioError as exc:
            self._error(ApiError("ValidationException", str(exc)))
        else:
            self._send(200, b'{"scenario": "replaced"}', "application/json")

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(ApiError("SerializationException", "Chunked bodies are not supported", 411))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(ApiError("SerializationException", "Invalid Content-Length"))
            return None
        if length > MAX_BODY:
            self.close_connection = True
            remaining = min(length, DRAIN_LIMIT)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            message = f"Request body of {length} bytes exceeds the {MAX_BODY}-byte limit"
            self._error(ApiError("RequestEntityTooLargeException", message))
            return None
        return self.rfile.read(length)

    def _answer(self, outcome: Outcome) -> None:
        if outcome.drop:
            self.close_connection = True
            return
        self._send(outcome.status, outcome.body, outcome.content_type, outcome.headers)

    def _send_key(self, name: str) -> None:
        """`<version>.pem` from the public key directory (digits only: no path tricks)."""
        version = name.removesuffix(".pem")
        pem = self.server.service.public_key_dir / f"{version}.pem"
        if not (
            name.endswith(".pem") and version.isdigit() and version.isascii() and pem.is_file()
        ):
            self._no_route("GET", f"/_emulator/keys/{name}")
            return
        self._send(200, pem.read_bytes(), "application/x-pem-file")

    def _no_route(self, method: str, path: str) -> None:
        message = f"No route for {method} {path[:100]}"
        self._error(ApiError("UnknownOperationException", message, 404))

    def _error(self, error: ApiError) -> None:
        outcome = error.outcome()
        self._send(outcome.status, outcome.body, outcome.content_type, outcome.headers)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", request_id())
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # bursts of concurrent pods must not overflow the accept backlog

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, `drop` tests) are normal here: no traceback."""
        failure = sys.exc_info()[1]
        if not isinstance(failure, ConnectionError | TimeoutError):
            log.warning("emulator request from %s failed: %r", client_address, failure)


class Emulator:
    """The local Metering emulator on a real socket; a context manager (start/stop)."""

    def __init__(
        self,
        scenario: ScenarioSource = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_key_dir: Path | None = None,
        now: Callable[[], datetime] | None = None,
        clock_offset_seconds: float | None = None,
        apis: Mapping[str, JsonApi] = JSON_APIS,
    ) -> None:
        self.service = Service(scenario, public_key_dir, now, clock_offset_seconds, apis=apis)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._session: Any = None  # one boto3 session: clients share exception classes
        self._session_lock = threading.Lock()

    @property
    def public_key_dir(self) -> Path:
        """Directory holding `<version>.pem` (SPKI PEM) for every key version it signs with."""
        return self.service.public_key_dir

    @property
    def url(self) -> str:
        """`http://HOST:PORT` of the running server."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}"

    def start(self) -> Self:
        """Bind and serve in a background thread."""
        self._server = _Server(self._address, self.service)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (and a key directory it created)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.service.close()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:  # the port is taken: release the key directory all the same
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def set_scenario(self, scenario: ScenarioSource) -> None:
        """Swap the scenario at runtime (same as `POST /_emulator/scenario`)."""
        self.service.set_scenario(scenario)

    def records(self) -> dict[str, Any]:
        """Accepted records and request counts (same as `GET /_emulator/records`)."""
        return self.service.records()

    def licenses(self) -> list[dict[str, Any]]:
        """Each license with its seats in use and consumptions (`GET /_emulator/licenses`)."""
        return self.service.licenses()

    def reset(self) -> None:
        """Clear records, buckets and fault counters (same as `POST /_emulator/reset`)."""
        self.service.reset()

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> int:
        """Block until `count` requests are parked by `hold` faults (TimeoutError otherwise)."""
        return self.service.holds.wait_held(count, timeout)

    def release(self) -> int:
        """Let every request parked by a `hold` fault go on (same as `POST /_emulator/release`)."""
        return self.service.holds.release()

    def credentials(self, access_key_id: str) -> tuple[str, str | None]:
        """(secret, session token) to sign as `access_key_id`: the scenario's `callers` entry, or
        a dummy secret when the scenario has none (the emulator then does not check HMACs)."""
        keys = self.service.scenario.callers.get(access_key_id)
        if keys is None:
            return DUMMY_SECRET, None
        return keys.secret, keys.session_token

    def env(self, access_key_id: str = "AKIDPOD1", region: str | None = None) -> dict[str, str]:
        """Environment variables that point an unchanged boto3 at this emulator."""
        secret, token = self.credentials(access_key_id)
        env = {
            "AWS_ENDPOINT_URL_MARKETPLACE_METERING": self.url,
            "AWS_ENDPOINT_URL_LICENSE_MANAGER": self.url,
            "AWS_ENDPOINT_URL_STS": self.url,
            "AWS_ACCESS_KEY_ID": access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": region or self.service.scenario.region,
            "AWS_REGION": region or self.service.scenario.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if token is not None:
            env["AWS_SESSION_TOKEN"] = token
        return env

    def client(
        self, access_key_id: str = "AKIDPOD1", region: str | None = None, max_attempts: int = 1
    ) -> MarketplaceMeteringClient:
        """A real boto3 `meteringmarketplace` client signed as `access_key_id` (one pod)."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        secret, token = self.credentials(access_key_id)
        with self._session_lock:  # creating clients from one session is not thread-safe
            if self._session is None:
                self._session = boto3.session.Session()
            client: MarketplaceMeteringClient = self._session.client(
                "meteringmarketplace",
                region_name=region or self.service.scenario.region,
                endpoint_url=self.url,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                config=config,
            )
        return client
