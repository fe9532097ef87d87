"""Request body limit for every route: 413 before the body is buffered.

A declared ``Content-Length`` over the limit is refused at once, before the body is read. A
body without one (chunked) is counted as it streams in and refused as soon as it passes the
limit, so neither kind ever sits in memory whole. The connection stays open: uvicorn drops
the rest of the body as it arrives (never buffering it), so a client still busy sending reads
the 413 instead of a connection reset.
"""
from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The request body passed the limit (an HTTPException, so any route's handler can answer it)."""

    def __init__(self, limit: int, declared: int | None = None):
        got = f"this one is {_mb(declared)}" if declared is not None else "the body went past it"
        super().__init__(413, f"request body too large: the limit is {_mb(limit)} and {got}; send smaller "
                              "images or fewer per request, or raise the limit (setting serve.max_body_mb)")
        self.reason = "body_too_large"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB ({n} bytes)"


def _json_error(status: int, message: str, reason: str) -> tuple[Message, Message]:
    body = json.dumps({"error": message, "reason": reason}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    return start, {"type": "http.response.body", "body": body}


class BodyLimitMiddleware:
    """ASGI middleware refusing HTTP request bodies over ``max_bytes`` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = self._content_length(scope)
        if declared == -1:
            await self._answer(send, 400, "the Content-Length header is not a non-negative integer", "bad_content_length")
            return
        if declared is not None and declared > self.max_bytes:
            await self._answer(send, 413, BodyTooLarge(self.max_bytes, declared).detail, "body_too_large")
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as e:
            if started:  # the route answered before reading everything; nothing left to say
                return
            await self._answer(send, 413, str(e.detail), e.reason)

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        """The declared length, None when absent, -1 when malformed."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    return -1
                return n if n >= 0 else -1
        return None

    @staticmethod
    async def _answer(send: Send, status: int, message: str, reason: str) -> None:
        start, body = _json_error(status, message, reason)
        await send(start)
        await send(body)
