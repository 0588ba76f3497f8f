"""The doctor's network probes: name resolution, TCP reach, the endpoint's clock, IMDS.

Every probe has a short timeout and answers with data or a one-line reason, never an exception:
a doctor run on a pod with no route to AWS must still print every other check. Standard library
only (the doctor also runs inside the release image, where nothing else is guaranteed).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import queue
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

DEFAULT_IMDS = "http://169.254.169.254"
IMDS_ROLES = "/latest/meta-data/iam/security-credentials/"


@dataclass(frozen=True)
class Target:
    """Where a URL's connection goes: the host and port, and the proxy in between if any."""

    scheme: str
    host: str
    port: int
    proxy: tuple[str, int] | None

    @property
    def first_hop(self) -> tuple[str, int]:
        return self.proxy or (self.host, self.port)


def target(url: str, environ: Mapping[str, str]) -> Target:
    """The host, port and proxy (HTTPS_PROXY / HTTP_PROXY unless NO_PROXY) of `url`."""
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    return Target(scheme, host, port, _proxy(scheme, host, environ))


def _proxy(scheme: str, host: str, environ: Mapping[str, str]) -> tuple[str, int] | None:
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    proxy = next((environ[n].strip() for n in names if environ.get(n, "").strip()), "")
    if not proxy or _bypassed(host, environ.get("NO_PROXY") or environ.get("no_proxy") or ""):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname or "", parts.port or 80) if parts.hostname else None


def _bypassed(host: str, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",") if e.strip()):
        if entry == "*" or host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")):
            return True
    return False


def resolve(host: str, port: int, timeout: float) -> list[str] | str:
    """The addresses `host` resolves to, or a one-line reason (getaddrinfo has no timeout)."""
    answers: queue.Queue[list[str] | str] = queue.Queue()

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            answers.put(sorted({str(info[4][0]) for info in infos}))
        except OSError as exc:
            answers.put(f"cannot resolve {host}: {exc.strerror or exc}")

    threading.Thread(target=lookup, daemon=True).start()
    try:
        return answers.get(timeout=timeout)
    except queue.Empty:
        return f"resolving {host} took longer than {timeout:g} s"


def address_kind(address: str) -> str:
    """'loopback', 'private' (a VPC endpoint or a proxy inside the VPC) or 'public'."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return "loopback"
    return "private" if ip.is_private else "public"


def connect(host: str, port: int, timeout: float) -> float | str:
    """Seconds a TCP connection to host:port took, or a one-line reason."""
    begun = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return time.monotonic() - begun
    except TimeoutError:
        return f"TCP connect to {host}:{port} timed out after {timeout:g} s"
    except OSError as exc:
        return f"TCP connect to {host}:{port} failed: {exc.strerror or exc}"


def server_clock_offset(
    url: str, environ: Mapping[str, str], timeout: float
) -> tuple[float, str] | str:
    """(server Date minus local time in seconds, the Date header), or a one-line reason."""
    where = target(url, environ)
    try:
        connection = _connection(where, environ, timeout)
        try:
            before = time.time()
            connection.request("GET", "/", headers={"User-Agent": "entitlement-sidecar-doctor"})
            response = connection.getresponse()
            after = time.time()
            date = response.getheader("Date")
            response.read(65536)
        finally:
            connection.close()
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        return f"no HTTP answer from {where.host}:{where.port}: {exc}"
    if not date:
        return f"{where.host} answered without a Date header"
    try:
        server = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return f"{where.host} answered an unreadable Date header {date!r}"
    # The Date header has whole seconds: compare with the middle of the exchange.
    return server - (before + after) / 2, date


def _connection(
    where: Target, environ: Mapping[str, str], timeout: float
) -> http.client.HTTPConnection:
    host, port = where.first_hop
    if where.scheme != "https":
        plain = http.client.HTTPConnection(host, port, timeout=timeout)
        if where.proxy:
            plain.set_tunnel(where.host, where.port)
        return plain
    bundle = environ.get("AWS_CA_BUNDLE", "").strip()
    context = ssl.create_default_context(cafile=bundle or None)
    secure = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    if where.proxy:
        secure.set_tunnel(where.host, where.port)
    return secure


def imds_role(environ: Mapping[str, str], timeout: float) -> str | None:
    """The instance role IMDS hands out to this pod (what boto3 falls back to), or None.

    IMDSv2 first (a token by PUT), then the role name, as botocore asks for it.
    """
    if environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
        return None
    base = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "").strip() or DEFAULT_IMDS
    where = target(base, {})
    try:
        connection = _connection(where, {}, timeout)
        try:
            connection.request(
                "PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
            )
            token_answer = connection.getresponse()
            token = token_answer.read(4096).decode("ascii", "replace")
            headers = {"X-aws-ec2-metadata-token": token} if token_answer.status == 200 else {}
            connection.request(
                "GET", "/latest/meta-data/iam/security-credentials/", headers=headers
            )
            answer = connection.getresponse()
            body = answer.read(4096).decode("utf-8", "replace").strip()
        finally:
            connection.close()
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return None
    return body.splitlines()[0] if answer.status == 200 and body else None


def readable(path: str) -> str | None:
    """None when `path` is a readable file, else why not."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def writable_directory(path: str) -> str | None:
    """None when a file can be created and removed in `path`, else why not."""
    probe = os.path.join(path, f".doctor.{os.getpid()}.probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None
