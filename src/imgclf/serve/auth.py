"""Bearer-token authentication for every route of the app, the web UI's included.

When a token is set, every HTTP request except the health probes (``/v2/health/live``,
``/v2/health/ready``) must carry it, in one of three ways:

- the header ``Authorization: Bearer <token>`` (API clients, ``imgclf call``);
- the cookie ``imgclf_token=<token>`` (browsers, after the next point);
- the query parameter ``?token=<token>`` on a GET request: a browser page opened once as
  ``http://host:port/ui?token=T`` (or ``/docs?token=T``) is let in and receives the cookie
  (HttpOnly, SameSite=Strict, Path=/), so the page's own later requests, ``fetch()`` calls
  included, pass without repeating the token. SameSite=Strict keeps other sites' pages from
  riding on the cookie.

Anything else gets 401 with ``{"error": ...}`` and ``WWW-Authenticate: Bearer``. Tokens are
compared in constant time. This is middleware, not a per-route dependency, so routes mounted
later (the UI's) cannot forget it.

Without a token, :class:`HostCheckMiddleware` answers only requests whose ``Host`` header names
this machine (``localhost``, ``127.0.0.1``, ``[::1]``, ...) or one of ``serve.allowed_hosts``:
a web page on another site that rebinds its own name to 127.0.0.1 (DNS rebinding) sends its own
name as Host, so it can neither read the UI's API nor write corrections through it.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ForeignHost, json_error_messages

#: Paths answered without a token (orchestrators probe them without credentials).
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
COOKIE = "imgclf_token"
QUERY = "token"


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return ""


class TokenAuthMiddleware:
    """ASGI middleware: 401 unless the request carries ``token`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str):
        if not token:
            raise ValueError("TokenAuthMiddleware needs a non-empty token")
        self.app = app
        self._token = token.encode()

    def _matches(self, candidate: str) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode("utf-8", "replace"), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        auth = _header(scope, b"authorization")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer" and self._matches(credentials.strip()):
            await self.app(scope, receive, send)
            return
        cookie = SimpleCookie()
        try:
            cookie.load(_header(scope, b"cookie"))
        except Exception:  # a malformed Cookie header is just no cookie
            cookie = SimpleCookie()
        if COOKIE in cookie and self._matches(cookie[COOKIE].value):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope.get("method") in ("GET", "HEAD") and any(self._matches(t) for t in query.get(QUERY, [])):
            await self.app(scope, receive, self._setting_cookie(send))
            return
        await self._refuse(scope, send)

    def _setting_cookie(self, send: Send) -> Send:
        morsel = SimpleCookie({COOKIE: self._token.decode()})[COOKIE]  # quotes odd characters
        morsel.update({"path": "/", "httponly": True, "samesite": "Strict"})
        value = morsel.OutputString().encode("latin-1")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", value)]}
            await send(message)

        return wrapped

    @staticmethod
    async def _refuse(scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": "missing or wrong token: send the header 'Authorization: Bearer <token>' "
                                    "(browsers: open the page once with ?token=<token>)",
                           "reason": "unauthorized"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="imgclf"')]})
        await send({"type": "http.response.body", "body": body})


def host_name(header: str) -> str:
    """The name part of a Host header value: port and brackets dropped, lower case, no trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """True for names only this machine answers to: localhost (and *.localhost), 127.0.0.0/8, ::1."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheckMiddleware:
    """ASGI middleware of a server without a token: 421 unless the Host header is a loopback name
    or in ``allowed`` (``"*"`` allows any). The health probes are answered whatever the Host."""

    def __init__(self, app: ASGIApp, allowed: list[str] | tuple[str, ...] = ()):
        self.app = app
        self.allowed = {host_name(h) for h in allowed if h != "*"}
        self.any = "*" in allowed

    def accepts(self, header: str) -> bool:
        if self.any or not header:  # no Host at all (HTTP/1.0): no browser sent it, so no rebinding either
            return True
        name = host_name(header)
        return name in self.allowed or is_loopback_name(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if self.accepts(host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = host if host.isprintable() and len(host) <= 100 else repr(host[:100])
        start, body = json_error_messages(ForeignHost(
            f"this server answers Host {shown!r} only with a token: without one it answers only its loopback names "
            "(localhost, 127.0.0.1, [::1]) and serve.allowed_hosts; open it as http://127.0.0.1:PORT, add the name to "
            "serve.allowed_hosts, or start it with --token / IMGCLF_TOKEN"))
        await send(start)
        await send(body)
