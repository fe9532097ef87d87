"""Every error imgclf expects a user to meet, in one hierarchy rooted in :class:`ImgclfError`.

Each error carries a message (what, expected, received), a ``hint`` (how to fix it) and a
``reason``: a short machine-readable code. The CLI prints message and hint as two lines, never a
traceback; the HTTP layer maps reasons to status codes in one place (``imgclf.serve.errors``),
so nothing below it knows about HTTP.
"""
from __future__ import annotations


class ImgclfError(Exception):
    """Base of the errors we expect users to meet; ``hint`` says how to fix it."""

    reason = "error"  # default code of the class; an instance may carry a more precise one

    def __init__(self, message: str, hint: str = "", *, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if reason is not None:
            self.reason = reason


class ConfigError(ImgclfError, ValueError):
    """A configuration key or value that is not accepted."""

    reason = "invalid_config"


class DatasetError(ImgclfError):
    """The images folder cannot make a dataset (missing, too few classes or images)."""

    reason = "dataset"


class BackboneError(ImgclfError):
    """Unknown backbone, or weights that cannot be had offline."""

    reason = "backbone"


class BundleError(ImgclfError):
    """A model bundle that is missing, incomplete or tampered with."""

    reason = "bundle"


class ModelFileError(ImgclfError):
    """An ONNX file its runtime (OpenVINO, ONNX Runtime) cannot load: damaged, or not a model. ``detail`` is the
    runtime's own first line; a bundle's loader reports it as a :class:`BundleError`."""

    def __init__(self, message: str, hint: str = "", *, detail: str):
        super().__init__(message, hint)
        self.detail = detail


class RunDirError(ImgclfError):
    """A run directory that lacks the output of an earlier step."""

    reason = "run_dir"


class NotFound(ImgclfError):
    """Something asked for by name or index that does not exist (an image, a result row, a run)."""

    reason = "not_found"


class InvalidRequest(ImgclfError):
    """A request (from the web UI or an API client) that is malformed or names a wrong value."""

    reason = "bad_request"


class ImageError(ImgclfError, ValueError):
    """An input that is not a usable image. ``reason`` is a short code (``truncated``, ``empty``, ...)."""

    reason = "bad_image"

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}", reason=reason)
        self.detail = detail


class ImageTooLarge(ImageError):
    """A decompression bomb: more pixels than the decoder accepts."""


class UnsupportedFormat(ImageError):
    """A real image in a format outside the decoder's allowlist."""


class NotExplainable(ImgclfError):
    """A model whose scores class activation maps cannot decompose (not one featurizer average-pooled into a linear head)."""

    reason = "not_explainable"


class RefineError(ImgclfError):
    """Refinement cannot go on (out of memory, nothing to resume, a changed config)."""

    reason = "refine"


class TrackingError(ImgclfError):
    """The run-history store cannot be used as configured."""

    reason = "tracking"


class UnsafeURL(ImgclfError):
    """A URL that may not be fetched (private address, bad scheme, ...); ``reason`` is a short code."""

    reason = "unsafe_url"

    def __init__(self, reason: str, message: str):
        super().__init__(message, reason=reason,
                         hint="only public http(s) addresses are fetched; pass --allow-private for a server on "
                              "this machine or your network")


class FetchError(ImgclfError):
    """A URL that could not be fetched; ``retry`` says whether trying again may help."""

    reason = "fetch"

    def __init__(self, reason: str, detail: str, retry: bool = False):
        super().__init__(f"{reason}: {detail}", reason=reason)
        self.detail = detail
        self.retry = retry


class ProviderError(ImgclfError):
    """An image search that failed (no network, key refused, rate limited, ...)."""

    reason = "provider"


class QueueFull(ImgclfError):
    """No room for more images in the service's queue; ``retry_after`` is a hint in whole seconds."""

    reason = "queue_full"

    def __init__(self, requested: int, depth: int, capacity: int, retry_after: int):
        super().__init__(f"the queue holds {depth} of at most {capacity} images; {requested} more do not fit")
        self.retry_after = retry_after
