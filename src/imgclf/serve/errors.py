"""Every error the service answers is JSON ``{"error": "...", "reason": "..."}``.

Bad input is answered by the handlers for :class:`ApiError`, HTTP exceptions and validation
errors (4xx). The catch-all handler is only for bugs: it answers 500 with the same shape,
logs the traceback and counts ``imgclf_internal_errors_total``, which tests keep at zero.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..images import ImageError
from .metrics import Metrics

log = logging.getLogger("imgclf.serve")


class ApiError(Exception):
    """An error answered as ``status`` with a JSON body; ``reason`` is a short code."""

    def __init__(self, status: int, message: str, reason: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def image_error(e: ImageError, index: int, name: str | None) -> ApiError:
    """The ApiError of one undecodable image of a request (400, 413 or 415)."""
    which = f"image {index}" + (f" ({name})" if name else "")
    return ApiError(e.status, f"{which} is not usable: {e.detail}; send a JPEG, PNG, BMP, GIF, WEBP or TIFF file",
                    e.reason)


def error_response(status: int, message: str, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "reason": reason}, status_code=status, headers=headers)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """JSON answers for API errors, HTTP errors, validation errors and (counted) bugs."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.reason, e.headers)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException) -> JSONResponse:
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

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        metrics.internal_errors.inc()
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=e)
        return error_response(500, f"internal error ({type(e).__name__}); this is a bug, please report it", "internal")
