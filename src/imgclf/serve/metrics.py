"""Prometheus metrics of one app (its own registry, so several apps can live in one process).

Requests are counted by route template (``/v2/models/{name}/infer``, never the raw path, so a
scanner cannot blow up the label set) and status, including the 401s and 413s answered by
middleware before routing.
"""
from __future__ import annotations

import time
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The service's counters, histograms and gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("imgclf_requests", "HTTP requests by route and status", ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("imgclf_request_duration_seconds", "HTTP request latency by route", ["endpoint"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.images = Counter("imgclf_images", "Images classified", registry=r)
        self.batch_size = Histogram("imgclf_batch_size", "Images per engine call", buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("imgclf_batch_seconds", "Engine time per batch", buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("imgclf_queue_depth", "Images admitted and not yet answered", registry=r)
        self.rejected = Counter("imgclf_rejected", "Requests refused before inference", ["reason"], registry=r)
        self.client_disconnects = Counter("imgclf_client_disconnects", "Requests whose client hung up before they were read",
                                          registry=r)
        self.internal_errors = Counter("imgclf_internal_errors", "Unexpected exceptions (bugs) answered with 500", registry=r)
        self.model_ready = Gauge("imgclf_model_ready", "1 when the model is loaded and the server is not draining", registry=r)
        self.kept = Counter("imgclf_kept_images", "Images kept for labelling (serve.keep_inputs)", registry=r)
        self.kept_repeats = Counter("imgclf_kept_repeats", "Answered images already kept: their count raised", registry=r)
        self.keep_dropped = Counter("imgclf_keep_dropped", "Answered images not kept, by reason", ["reason"], registry=r)
        self.kept_evicted = Counter("imgclf_kept_evicted", "Kept images deleted, oldest first, within serve.keep_quota_mb",
                                    registry=r)
        self.kept_bytes = Gauge("imgclf_kept_bytes", "Bytes the kept images take", registry=r)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.images.inc(size)

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _endpoint(app: ASGIApp, scope: Scope) -> str:
    """The route template that matched (or would have matched) the request."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        try:
            if candidate.matches(scope)[0] is Match.FULL:
                return candidate.path
        except Exception:  # an odd route type: count the request as unmatched rather than fail it
            continue
    return "unmatched"


class MetricsMiddleware:
    """Outermost ASGI middleware: counts every HTTP request and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes_of: ASGIApp):
        self.app = app
        self.metrics = metrics
        self.routes_of = routes_of  # the FastAPI app whose routes name the endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app dies before answering
        t0 = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            endpoint = _endpoint(self.routes_of, scope)
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
