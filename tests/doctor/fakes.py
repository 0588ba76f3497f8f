"""Local stand-ins for what a pod may meet: IMDS, a skewed endpoint, an AWS that says no.

Each is a real HTTP server on loopback (the doctor's probes run unchanged against it); only the
answers are canned.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = tuple[int, dict[str, str], bytes]
Answers = dict[tuple[str, str], Answer]


@contextmanager
def serve(answers: Answers, default: Callable[[], Answer]) -> Iterator[str]:
    """Serve `answers[(method, path)]` (else `default()`) on loopback; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            answer = answers.get((self.command, self.path))
            status, headers, body = answer if answer is not None else default()
            self.send_response_only(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def imds(role: str) -> Answers:
    """IMDSv2 answers handing out the node's instance role `role`."""
    return {
        ("PUT", "/latest/api/token"): (200, {}, b"imds-token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"): (200, {}, role.encode()),
    }


def not_found() -> Answer:
    return 404, {}, b""


def skewed_date(seconds: float) -> Callable[[], Answer]:
    """Answers 404 with a Date header `seconds` away from the time of the request."""
    return lambda: (404, {"Date": formatdate(time.time() + seconds, usegmt=True)}, b"")


def aws_error(code: str, status: int = 400) -> Callable[[], Answer]:
    """Answers an AWS JSON 1.1 error `code`."""
    body = json.dumps({"__type": code, "message": f"{code} (fake)"}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
    return lambda: (status, headers, body)
