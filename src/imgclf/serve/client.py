"""A client for the service (the 2017 sample's 6_callWebservice): time each call and split the
round trip into the server's own time (``executionTimeMs``) and the overhead (network, HTTP,
JSON).
"""
from __future__ import annotations

import base64
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx

from ..util.errors import ImgclfError


@dataclass
class CallResult:
    round_trip_ms: float
    server_ms: float
    label: str
    score: float

    @property
    def overhead_ms(self) -> float:
        return self.round_trip_ms - self.server_ms


def endpoint(url: str) -> tuple[str, str]:
    """(full URL, kind) where kind is "predict" or "score"; a bare server URL means /predict."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImgclfError(f"not a service URL: {url!r}", hint="use e.g. http://127.0.0.1:8000 (or .../predict, .../score)")
    path = parts.path.rstrip("/")
    if path in ("", "/"):
        return url.rstrip("/") + "/predict", "predict"
    if path.endswith("/predict"):
        return url, "predict"
    if path.endswith("/score"):
        return url, "score"
    raise ImgclfError(f"cannot call {url}: the client speaks to /predict and /score",
                      hint="give the server's base URL, e.g. http://127.0.0.1:8000")


def _request(kind: str, image: bytes) -> dict[str, Any]:
    if kind == "score":
        return {"json": {"input_df": [{"image base64 string": base64.b64encode(image).decode("ascii")}]}}
    return {"content": image, "headers": {"Content-Type": "application/octet-stream"}}


def _parse(kind: str, body: Any) -> tuple[float, str, float]:
    """(server ms, label, score) of a /predict or /score answer."""
    if kind == "score":
        return float(body["executionTimeMs"]), body["label"], float(body["score"])
    first = body["predictions"][0]
    return float(body["executionTimeMs"]), first["label"], float(first["score"])


def call(url: str, image_path: str | Path, *, n: int = 5, token: str | None = None,
         timeout: float = 60.0) -> Iterator[CallResult]:
    """Send the image ``n`` times over one connection; yields one timing per call."""
    full, kind = endpoint(url)
    try:
        image = Path(image_path).read_bytes()
    except OSError as e:
        raise ImgclfError(f"cannot read {image_path}: {e.strerror or e}", hint="give the path of an image file") from None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = _request(kind, image)
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                resp = client.post(full, **req)
            except httpx.HTTPError as e:
                raise ImgclfError(f"cannot reach {full}: {e}", hint="is `imgclf serve` running there?") from None
            rt = (time.perf_counter() - t0) * 1000.0
            if resp.status_code != 200:
                raise ImgclfError(f"{full} answered {resp.status_code}: {_error_text(resp)}",
                                  hint="pass --token (or set IMGCLF_TOKEN)" if resp.status_code == 401
                                  else "check the image and the server's log")
            server_ms, label, score = _parse(kind, resp.json())
            yield CallResult(round(rt, 3), server_ms, label, score)


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text[:200]))
    except ValueError:
        return resp.text[:200]


def summary(results: list[CallResult]) -> str:
    """Medians over the calls (the first call also pays for opening the connection)."""
    med = statistics.median
    return (f"median of {len(results)}: round trip {med(r.round_trip_ms for r in results):.1f} ms, "
            f"server {med(r.server_ms for r in results):.1f} ms, overhead {med(r.overhead_ms for r in results):.1f} ms")


@dataclass
class LoadResult:
    """What :func:`run_load` saw: latencies of the successful calls and every failure."""

    seconds: float
    latencies_ms: list[float]
    errors: dict[str, int]  # status code (or exception name) -> count

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


def run_load(url: str, images: list[bytes], *, clients: int = 32, duration_s: float = 10.0,
             token: str | None = None, timeout: float = 60.0) -> LoadResult:
    """``clients`` concurrent callers POST the images (round robin) to /predict for ``duration_s``."""
    import asyncio

    from ..util.aio import run_sync

    full, _ = endpoint(url)
    headers = {"Content-Type": "application/octet-stream", **({"Authorization": f"Bearer {token}"} if token else {})}
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def caller(client: httpx.AsyncClient, k: int, until: float) -> None:
        i = k
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                r = await client.post(full, content=images[i % len(images)], headers=headers)
                key = None if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            if key is None:
                latencies.append((time.perf_counter() - t0) * 1000.0)
            else:
                errors[key] = errors.get(key, 0) + 1
            i += clients

    async def main() -> float:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            t0 = time.perf_counter()
            await asyncio.gather(*(caller(client, k, t0 + duration_s) for k in range(clients)))
            return time.perf_counter() - t0

    seconds = run_sync(main())
    return LoadResult(seconds, latencies, errors)
