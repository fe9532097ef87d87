"""One safe HTTP GET of a user-supplied URL: checked addresses, byte cap, timeouts, retries.

Built on :mod:`http.client` so that the connection goes to the address :func:`check_url`
checked (the TLS handshake still verifies the certificate for the original host name), and
so that nothing is done behind our back: no proxy, no decompression, no automatic redirect.
"""
from __future__ import annotations

import http.client
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urljoin

from ..util.errors import FetchError, ImgclfError, UnsafeURL
from .safety import Resolver, Target, check_url, parse_endpoint

USER_AGENT = "imgclf/0.1 (image dataset downloader)"
REDIRECT_CODES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class FetchOptions:
    """How one URL is fetched; the defaults suit images from the open web."""

    connect_timeout: float = 10.0  # seconds to open the connection (and finish TLS)
    read_timeout: float = 20.0  # seconds without a byte before giving up
    deadline: float = 60.0  # seconds for the whole file, retries and redirects included
    max_bytes: int = 20 * 1024 * 1024  # body size cap, enforced while streaming
    retries: int = 3  # extra attempts after a timeout, a connection error or a 5xx
    backoff: float = 0.5  # first retry waits up to this many seconds, doubling each time (full jitter)
    max_redirects: int = 5  # redirect hops followed, each one checked again
    allow_private: bool = False  # skip the address check (a server on this machine or network)
    allow_addresses: tuple[str, ...] = ()  # single private endpoints allowed, "IP:PORT"
    resolver: Resolver | None = field(default=None, compare=False)  # None = the system resolver

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "deadline", "max_bytes"):
            if getattr(self, name) <= 0:
                raise ImgclfError(f"download option {name} must be > 0; got {getattr(self, name)}")
        if self.retries < 0 or self.max_redirects < 0 or self.backoff < 0:
            raise ImgclfError("download options retries, max_redirects and backoff must be >= 0")
        for spec in self.allow_addresses:
            parse_endpoint(spec)  # a typo fails here, not in every worker


def fetch(url: str, opts: FetchOptions = FetchOptions()) -> bytes:
    """The body of ``url`` (after redirects); raises :class:`FetchError` when it cannot be had."""
    deadline = time.monotonic() + opts.deadline
    attempt = 0
    while True:
        try:
            return _fetch_once(url, opts, deadline)
        except FetchError as e:
            left = deadline - time.monotonic()
            if not e.retry or attempt >= opts.retries or left <= 0:
                raise
            # full jitter: concurrent workers hitting one failing host don't retry in lockstep
            pause = random.uniform(0, opts.backoff * 2**attempt)
            if pause >= left:
                raise
            time.sleep(pause)
            attempt += 1


def _fetch_once(url: str, opts: FetchOptions, deadline: float) -> bytes:
    for _hop in range(opts.max_redirects + 1):
        try:
            target = check_url(url, opts.allow_private, allow_addresses=opts.allow_addresses, resolver=opts.resolver)
        except UnsafeURL as e:
            raise FetchError(e.reason, str(e)) from None
        status, location, body = _get(target, opts, deadline)
        if status in REDIRECT_CODES:
            if not location:
                raise FetchError("bad_redirect", f"HTTP {status} without a Location header")
            url = urljoin(url, location)
            continue
        return body
    raise FetchError("too_many_redirects", f"more than {opts.max_redirects} redirects")


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address; Host names the original host."""

    def __init__(self, target: Target, opts: FetchOptions):
        super().__init__(target.host, target.port, timeout=opts.connect_timeout)
        self._addresses = target.addresses

    def connect(self) -> None:
        self.sock = self._open_socket()

    def _open_socket(self) -> socket.socket:
        last: OSError | None = None
        for address in self._addresses:  # all checked; try them in the resolver's order
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as e:
                last = e
        assert last is not None
        raise last


class _PinnedHTTPS(_PinnedHTTP):
    """TLS to the checked address, verifying the certificate for the original host name."""

    def connect(self) -> None:
        sock = self._open_socket()
        try:
            self.sock = _tls_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _get(target: Target, opts: FetchOptions, deadline: float) -> tuple[int, str, bytes]:
    """One GET: (status, Location, body). Raises FetchError on anything but success or redirect."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("deadline", f"no time left of the {opts.deadline:g} s deadline")
    conn = (_PinnedHTTPS if target.scheme == "https" else _PinnedHTTP)(target, opts)
    conn.timeout = min(opts.connect_timeout, left)
    expired = threading.Event()
    opened: list[socket.socket] = []  # conn.sock is dropped once a closing response arrives; keep it

    def expire() -> None:  # a hard stop: a server dripping bytes defeats every per-read timeout
        expired.set()
        for sock in opened:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(left, expire)
    timer.daemon = True
    timer.start()
    try:
        conn.putrequest("GET", target.target, skip_accept_encoding=True)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Accept", "image/*,*/*;q=0.5")
        conn.putheader("Accept-Encoding", "identity")  # the byte cap counts what we store
        conn.endheaders()
        opened.append(conn.sock)
        if expired.is_set():
            raise FetchError("deadline", f"not connected within the {opts.deadline:g} s deadline")
        conn.sock.settimeout(opts.read_timeout)
        resp = conn.getresponse()
        if resp.status in REDIRECT_CODES:
            return resp.status, resp.getheader("Location") or "", b""
        if resp.status >= 400:
            raise FetchError(f"http_{resp.status}", resp.reason or "", retry=resp.status >= 500)
        if resp.status != 200:
            raise FetchError(f"http_{resp.status}", f"expected 200, got {resp.status} {resp.reason}")
        body = _read_capped(resp, opts.max_bytes)
        if expired.is_set():  # the stop looks like an ordinary end of a body without length
            raise FetchError("deadline", f"not done within the {opts.deadline:g} s deadline")
        if resp.length:  # read1 reports a short body as a plain end of data
            raise FetchError("incomplete", f"connection closed {resp.length} bytes short of Content-Length", retry=True)
        return resp.status, "", body
    except FetchError:
        raise
    except Exception as e:
        raise _classify(e, expired.is_set(), opts) from None
    finally:
        timer.cancel()
        conn.close()


def _read_capped(resp: http.client.HTTPResponse, max_bytes: int) -> bytes:
    length = resp.getheader("Content-Length")
    if length and length.strip().isdigit() and int(length) > max_bytes:
        raise FetchError("byte_cap", f"Content-Length {int(length)} exceeds the cap of {max_bytes} bytes")
    body = bytearray()
    while chunk := resp.read1(65536):  # read1: one recv at most, so the cap bites early
        body += chunk
        if len(body) > max_bytes:
            raise FetchError("byte_cap", f"body exceeds the cap of {max_bytes} bytes")
    return bytes(body)


def _classify(e: Exception, expired: bool, opts: FetchOptions) -> FetchError:
    if expired:
        return FetchError("deadline", f"not done within the {opts.deadline:g} s deadline")
    if isinstance(e, (socket.timeout, TimeoutError)):
        return FetchError("timeout", str(e) or "timed out", retry=True)
    if isinstance(e, ssl.SSLError):
        return FetchError("tls", str(e))
    if isinstance(e, http.client.IncompleteRead):
        return FetchError("incomplete", f"connection closed after {len(e.partial)} bytes", retry=True)
    if isinstance(e, (OSError, http.client.RemoteDisconnected)):
        return FetchError("connection", str(e) or type(e).__name__, retry=True)
    if isinstance(e, http.client.HTTPException):
        return FetchError("bad_response", str(e) or type(e).__name__)
    return FetchError("error", f"{type(e).__name__}: {e}")
