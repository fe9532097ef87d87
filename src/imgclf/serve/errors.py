"""Every error the service answers is JSON ``{"error": "...", "reason": "..."}``, and
:data:`STATUS` is the one place that gives an error its HTTP status.

Routes (the web UI's included) raise :class:`imgclf.util.errors.ImgclfError` subclasses; one handler
answers them with the status of the error's most specific class in :data:`STATUS`, the
error's message and its reason code. The few errors only an HTTP service meets (a request
body of the wrong media type, no model yet, a missed deadline) are defined here. HTTP
exceptions and validation errors keep their own handlers (4xx). The catch-all is only for
bugs, an ImgclfError no entry of the table covers included: it answers 500 with the same
shape, logs the traceback and counts ``imgclf_internal_errors_total``, which tests keep at zero.
"""
from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..util.errors import ImageError, ImageTooLarge, ImgclfError, InvalidRequest, NotExplainable, NotFound, QueueFull, UnsupportedFormat
from .metrics import Metrics

log = logging.getLogger("imgclf.serve")

E = TypeVar("E", bound=ImgclfError)

#: The status counted (never delivered) for a request whose client hung up (nginx's 499).
CLIENT_CLOSED_REQUEST = 499
#: Scope key the connection layer sets when it cut a request off for sending its body too slowly.
SCOPE_TIMED_OUT = "imgclf.timed_out"


class ErrorBody(BaseModel):  # the JSON of every error answer (no docstring: it would enter the OpenAPI schema)
    error: str
    reason: str | None = None


class UnsupportedMediaType(InvalidRequest):
    """A request body of a media type the route does not take."""

    reason = "unsupported_media_type"


class TooManyImages(InvalidRequest):
    """More images in one request than the queue could ever hold."""

    reason = "too_many_images"


class Unavailable(ImgclfError):
    """The service cannot answer yet (no model, still loading, shutting down); ``retry_after`` in seconds."""

    reason = "unavailable"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: int | None = None):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class Conflict(ImgclfError):
    """The request clashes with work in progress (a training job of the same dataset runs)."""

    reason = "conflict"


class DeadlinePassed(ImgclfError):
    """The request took longer than ``serve.timeout_s``."""

    reason = "deadline"


class PixelBudgetExceeded(InvalidRequest):
    """The images of one request hold more pixels together than ``serve.max_request_pixels``."""

    reason = "pixel_budget"


class RequestTimeout(ImgclfError):
    """A client too slow to send its request's headers or body (``serve.header_timeout_s``, ``serve.body_timeout_s``)."""

    reason = "request_timeout"


class ForeignHost(InvalidRequest):
    """A Host header this server does not answer without a token (DNS rebinding)."""

    reason = "foreign_host"


class MalformedHttp(InvalidRequest):
    """Bytes that are not an HTTP/1.1 request (a bad request line, header or Content-Length)."""

    reason = "bad_http"


#: HTTP status of each error class; an error gets the status of its most specific class listed.
STATUS: dict[type[ImgclfError], int] = {
    InvalidRequest: 400,
    ImageError: 400,
    NotFound: 404,
    RequestTimeout: 408,
    TooManyImages: 413,
    PixelBudgetExceeded: 413,
    ImageTooLarge: 413,
    UnsupportedMediaType: 415,
    UnsupportedFormat: 415,
    Conflict: 409,
    ForeignHost: 421,
    NotExplainable: 422,  # a model whose scores class activation maps cannot decompose
    Unavailable: 503,
    QueueFull: 503,
    DeadlinePassed: 504,
}
#: What the OpenAPI docs list as the error answers of a model route (401 comes from the token check).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in sorted({401, *STATUS.values()})}


def status_of(e: ImgclfError) -> int | None:
    """The HTTP status of ``e``; None for an error the service never means to answer (a bug)."""
    return next((STATUS[cls] for cls in type(e).__mro__ if cls in STATUS), None)


def restated(e: E, message: str) -> E:
    """``e`` with ``message`` in place of its own: the words of the request (which image, what to send).

    The class, and so the status and the reason code, stay those of the original error.
    """
    e.message = message
    e.args = (message,)
    return e


def raw_error_response(e: ImgclfError) -> bytes:
    """A whole HTTP/1.1 answer to ``e`` that closes the connection, for the connection layer, which
    answers before (or instead of) the app: the same JSON, the status from :data:`STATUS`."""
    status = status_of(e) or 500
    body = json.dumps({"error": e.message, "reason": e.reason}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def json_error_messages(e: ImgclfError) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ASGI ``http.response.start`` and ``http.response.body`` messages answering ``e`` (for middleware)."""
    body = json.dumps({"error": e.message, "reason": e.reason}).encode()
    start = {"type": "http.response.start", "status": status_of(e) or 500,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    return start, {"type": "http.response.body", "body": body}


def error_response(status: int, message: str, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "reason": reason}, status_code=status, headers=headers)


def _retry_after(e: ImgclfError) -> dict[str, str] | None:
    """``Retry-After`` for the errors that say when trying again may succeed (a full queue, a loading model)."""
    seconds = getattr(e, "retry_after", None)
    return {"Retry-After": str(seconds)} if seconds is not None else None


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """JSON answers for imgclf errors (through :data:`STATUS`), HTTP errors, validation errors and (counted) bugs.

    A client that hangs up before its request is read is not a bug: counted as
    ``imgclf_client_disconnects_total``, logged at debug, answered (to no one) 499, as nginx counts it.
    """

    def gone(request: Request) -> Response:
        if request.scope.get(SCOPE_TIMED_OUT):  # the connection layer cut a slow body off and sent the 408 itself
            return error_response(STATUS[RequestTimeout], "request body timed out", RequestTimeout.reason)
        metrics.client_disconnects.inc()
        log.debug("the client hung up during %s %s before its request was read", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(ClientDisconnect)
    async def _disconnected(request: Request, _: ClientDisconnect) -> Response:
        return gone(request)

    async def bug(request: Request, e: Exception) -> JSONResponse:
        metrics.internal_errors.inc()
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=e)
        return error_response(500, f"internal error ({type(e).__name__}); this is a bug, please report it", "internal")

    @app.exception_handler(ImgclfError)
    async def _expected(request: Request, e: ImgclfError) -> JSONResponse:
        status = status_of(e)
        if status is None:
            return await bug(request, e)
        return error_response(status, e.message, e.reason, _retry_after(e))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException) -> Response:
        if isinstance(e.__cause__, ClientDisconnect):  # FastAPI reports a JSON body cut short as "error parsing the body"
            return gone(request)
        reason = getattr(e, "reason", None) or {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "bad_request")
        return error_response(e.status_code, str(e.detail), reason, dict(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # Keep only loc/msg/type: echoing the offending input could mean undecodable bytes.
        errors = [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
                  for err in e.errors()]
        status = 400 if request.url.path.startswith("/v2/") else 422  # the Open Inference Protocol says 400
        body = {"error": _validation_message(errors), "reason": "invalid_request", "detail": errors}
        return JSONResponse(body, status_code=status)

    app.exception_handler(Exception)(bug)
