"""The connection layer under the app: slow clients are cut off, early answers are read.

uvicorn (h11) times out an idle keep-alive connection, but not a client that sends a request
slowly: one header line every few seconds, or a body dripped a byte at a time, holds a
connection (and a ``serve.max_connections`` slot) for ever, before any token check can run.
:func:`guarded_protocol` makes uvicorn's h11 protocol class with these guards:

- **headers:** a connection's request line and headers must arrive within
  ``serve.header_timeout_s`` of the connection (or, on a kept-alive connection, of the request's
  first byte); a connection that sends nothing is closed the same way;
- **body:** a body must arrive within ``serve.body_timeout_s`` plus one second per
  ``serve.body_min_rate`` bytes received (Apache's mod_reqtimeout rule: a slow upload that keeps
  moving may take longer, a drip may not);
- past either deadline the client gets 408 (JSON, the status from :mod:`imgclf.serve.errors`) and
  the connection is closed;
- **lingering close:** when the app answers before the request body is read (a 413 for a body
  over the limit), h11 must close the connection; closing with unread bytes makes the kernel
  reset it, and a client still writing its body (Python's urllib) sees "connection reset"
  instead of the 413. Like nginx, the write side is shut first and what the client still sends is
  read and dropped (at most ``serve.body_timeout_s``, and while bytes keep coming), so it reads the answer.
  The write side is shut once the answer has left the buffer; a client that has already reset the
  connection (ENOTCONN, common under a flood answered 503) is counted as a hang-up and the
  connection closed, never logged as an error;
- a request that is not HTTP/1.1 (a malformed Content-Length, ...) gets the JSON 400 of every
  other error instead of h11's plain text.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config.settings import ServeConfig
from .errors import SCOPE_TIMED_OUT, MalformedHttp, RequestTimeout, raw_error_response

log = logging.getLogger("imgclf.serve")

_LINGER_IDLE_S = 2.0  # a lingering close ends once the client has sent nothing for this long
_FLUSH_POLL_S = 0.05  # how often a lingering close looks whether the answer has left the buffer


@dataclass(frozen=True)
class Guards:
    """The deadlines of one server (from ``[serve]``)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_rate: int = 1000  # bytes per second that earn a body one more second

    @classmethod
    def from_config(cls, cfg: ServeConfig) -> "Guards":
        return cls(cfg.header_timeout_s, cfg.body_timeout_s, cfg.body_min_rate)


class _LingeringTransport:
    """The transport as the protocol's request cycles see it: ``close()`` lingers while a request
    body is still arriving (see the module docstring); everything else goes straight through."""

    def __init__(self, transport: Any, protocol: "GuardedH11Protocol"):
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        if not self._transport.is_closing() and self._protocol.body_incoming():
            self._protocol.linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a lingering close."""

    guards = Guards()
    on_refused: Callable[[str], None] = staticmethod(lambda reason: None)  # counts refusals (metrics)
    on_hangup: Callable[[], None] = staticmethod(lambda: None)  # counts clients that reset the connection first

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._raw = transport
        self.transport = _LingeringTransport(transport, self)  # request cycles made from now on get this one
        self._seen: Any = None  # the request cycle whose head the guards last saw
        self._timer: Any = None
        self._timer_kind = ""
        self._body_started = 0.0
        self._body_bytes = 0
        self._lingering = False
        self._write_shut = False
        self._linger_until = 0.0
        self._last_data = time.monotonic()
        self._arm(self.guards.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_data = time.monotonic()
        if self._lingering:
            return  # dropped: the answer is sent, the body only has to be drained
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self._timer is None:  # the first byte of a request on a kept-alive connection
            self._arm(self.guards.header_timeout_s, self._header_timeout)
        if self._seen is not None and self.cycle is self._seen and self.cycle.more_body:
            self._body_bytes += len(data)
        super().data_received(data)
        self._sync()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync()  # a pipelined request may have been parsed just now

    def send_400_response(self, msg: str) -> None:
        log.debug("malformed HTTP request: %s", msg)
        self.on_refused("bad_http")
        self._answer_and_close(MalformedHttp(
            "the request is not valid HTTP/1.1 (its request line, a header or Content-Length is malformed)"))

    def body_incoming(self) -> bool:
        """True while the current request's body has not all arrived."""
        return self.cycle is not None and self.cycle.more_body and not self.cycle.disconnected

    def linger(self) -> None:
        """Shut the write side and drop what the client still sends, then close (see the module docstring)."""
        if self._lingering:
            return
        self._lingering = True
        self._cancel()
        now = time.monotonic()
        self._linger_until = now + self.guards.body_timeout_s
        self._last_data = now
        self._shut_write_side()
        if not self._raw.is_closing():
            self._arm(_LINGER_IDLE_S if self._write_shut else _FLUSH_POLL_S, self._linger_check)

    def _shut_write_side(self) -> None:
        """Shut the write side once the answer has left the buffer. (Given buffered bytes, asyncio would
        shut it later from a callback of its own, where a reset connection's error is logged as a traceback.)"""
        if self._write_shut or self._raw.is_closing() or self._raw.get_write_buffer_size():
            return
        self._write_shut = True
        if not self._raw.can_write_eof():
            return
        try:
            self._raw.write_eof()
        except OSError as e:  # ENOTCONN: the client reset the connection; nobody is left to read the answer
            log.debug("%s hung up before its answer was read (%s)", self.client, e.strerror or e)
            self.on_hangup()
            self._raw.close()

    # ---------------------------------------------------------------- deadlines

    def _sync(self) -> None:
        """Move the deadlines along with what the parser has seen: a new request head, a whole body."""
        cycle = self.cycle
        if cycle is not None and cycle is not self._seen:
            self._seen = cycle
            self._cancel()
            if cycle.more_body:
                self._body_started = time.monotonic()
                self._body_bytes = 0
                self._arm(self.guards.body_timeout_s, self._body_timeout)
        elif cycle is not None and not cycle.more_body and self._timer is not None \
                and self._timer_kind == "body":
            self._cancel()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel()
        self._timer_kind = "body" if callback == self._body_timeout else "other"
        self._timer = self.loop.call_later(max(0.0, delay), callback)

    def _cancel(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if self._raw.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.on_refused("header_timeout")
        log.debug("closing %s: no complete request head within serve.header_timeout_s", self.client)
        self._answer_and_close(RequestTimeout(
            f"the request's headers did not arrive within serve.header_timeout_s = {self.guards.header_timeout_s} s"))

    def _body_timeout(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self._raw.is_closing() or cycle is None or not cycle.more_body:
            return
        deadline = self._body_started + self.guards.body_timeout_s + self._body_bytes / max(1, self.guards.body_min_rate)
        now = time.monotonic()
        if now < deadline:  # the body kept moving: it earned more time
            self._arm(deadline - now, self._body_timeout)
            return
        self.on_refused("body_timeout")
        log.debug("closing %s: request body too slow (%d bytes in %.1f s)", self.client, self._body_bytes,
                  now - self._body_started)
        answered = cycle.response_started
        cycle.scope[SCOPE_TIMED_OUT] = True
        cycle.disconnected = True  # the app's next receive() says http.disconnect; its answer goes nowhere
        cycle.message_event.set()
        if answered:
            self._raw.close()
            return
        self._answer_and_close(RequestTimeout(
            f"the request body did not arrive within serve.body_timeout_s = {self.guards.body_timeout_s} s "
            f"(plus 1 s per {self.guards.body_min_rate} bytes received)"))

    def _linger_check(self) -> None:
        self._timer = None
        now = time.monotonic()
        if self._raw.is_closing():
            return
        if now >= self._linger_until or now - self._last_data >= _LINGER_IDLE_S:
            self._raw.close()
            return
        self._shut_write_side()
        if self._raw.is_closing():
            return
        wait = _LINGER_IDLE_S - (now - self._last_data) if self._write_shut else _FLUSH_POLL_S
        self._arm(min(wait, self._linger_until - now), self._linger_check)

    def _answer_and_close(self, error: Exception) -> None:
        if not self._raw.is_closing():
            self._raw.write(raw_error_response(error))
            self._raw.close()


def guarded_protocol(guards: Guards, on_refused: Callable[[str], None] | None = None,
                     on_hangup: Callable[[], None] | None = None) -> type[GuardedH11Protocol]:
    """The protocol class to give ``uvicorn.Config(http=...)`` for ``guards``; ``on_refused(reason)``
    is called for each connection cut off (``header_timeout``, ``body_timeout``, ``bad_http``),
    ``on_hangup()`` for each client found to have reset the connection before reading its answer."""
    attrs: dict[str, Any] = {"guards": guards}
    if on_refused is not None:
        attrs["on_refused"] = staticmethod(on_refused)
    if on_hangup is not None:
        attrs["on_hangup"] = staticmethod(on_hangup)
    return type("ImgclfH11Protocol", (GuardedH11Protocol,), attrs)
