"""What the UI's routers share: the cache headers, a getter of a loaded part that answers NotFound, a thumbnail answer."""
from __future__ import annotations

from types import FunctionType
from typing import Callable, TypeVar

from fastapi import Response

from ..serve.errors import restated
from ..util.errors import ImageError, InvalidRequest, NotFound
from .thumbs import SIZES, ThumbnailCache

IMMUTABLE = {"Cache-Control": "private, max-age=31536000, immutable"}  # thumbnail URLs carry a version
NO_CACHE = {"Cache-Control": "no-cache"}
T = TypeVar("T")


def needed(part: T | Callable[[], T | None] | None, missing: str, reason: str | None = None) -> Callable[[], T]:
    """A getter of ``part``, a loaded part of the UI (or a function that returns the current one: the chosen
    iteration's, see :mod:`imgclf.ui.live`), that answers NotFound (``missing``, ``reason``) when it is None."""

    def need() -> T:
        current = part() if isinstance(part, FunctionType) else part
        if current is None:
            raise NotFound(missing, reason=reason)
        return current

    return need


def thumbnail_response(thumbs: ThumbnailCache, path: str, size: int, what: str, cacheable: bool) -> Response:
    """The JPEG thumbnail of image file ``path`` (``what`` names it in a refusal); cacheable for good when its URL
    carries the file's version."""
    if size not in SIZES:
        raise InvalidRequest(f"size must be one of {', '.join(map(str, SIZES))}; got {size}")
    try:
        data = thumbs.get(path, size)
    except OSError as e:
        raise NotFound(f"{what} cannot be read ({e.strerror or e}); reload the page", reason="unreadable") from None
    except ImageError as e:
        raise restated(e, f"{what} is not a usable image ({e.detail}); exclude it with x") from None
    return Response(data, media_type="image/jpeg", headers=IMMUTABLE if cacheable else NO_CACHE)
