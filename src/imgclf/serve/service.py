"""The inference service behind every endpoint: admission, decoding, deadline, micro-batching.

Every inference of a server runs here, whoever asks: /predict, /score, the Open Inference
Protocol, /explain and the web UI's Try and map endpoints, so all meet the same limits and memory
bounds. ``classify(images)`` reserves room in the :class:`MicroBatcher` (:class:`QueueFull` when it is
full), reads every image's header (format, size) and refuses a request whose images hold more
than ``serve.max_request_pixels`` together (:class:`PixelBudgetExceeded`, 413), decodes the images on a small thread pool with the one safe decoder, queues them for
the engine and waits, all within ``serve.timeout_s`` (:class:`DeadlinePassed` after it; the
batcher then drops the request's images that have not reached the engine yet). With ``serve.keep_inputs``
the answered images then go to the :class:`imgclf.serve.keeper.Keeper`'s queue, never waited for. ``explain(image, fn)``
admits one image the same way (room in the batcher's queue, header, pixel budget, deadline) and runs
``fn(predictor, image)`` on a thread of its own, one at a time: class activation maps never hold up
classification.
The errors' HTTP statuses are in :mod:`imgclf.serve.errors`.

Memory: the pixels being decoded at once, across all requests, stay within ``serve.max_request_pixels``
(an image waits for its decode until the images before it leave room; one image over it is decoded
alone), so the decode buffers are bounded by that setting whatever the numbers of cores and requests.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..config.settings import ServeConfig
from ..data.images import read_header
from ..features.engines import cpu_threads
from ..util.errors import ImageError, ImageTooLarge, InvalidRequest, QueueFull
from .batching import MicroBatcher
from .errors import DeadlinePassed, PixelBudgetExceeded, TooManyImages, Unavailable, restated
from .keeper import Keeper
from .metrics import Metrics

log = logging.getLogger("imgclf.serve")

T = TypeVar("T")
Source = bytes | str | PathLike  # an image's bytes (a request's), or a file the server may read (the UI's images)


@dataclass
class Classified:
    proba: np.ndarray  # (n, K)
    ms: float  # server time for the request (decode + queue + inference)
    ood: np.ndarray | None = None  # (n,) OOD scores (NaN for a bundle without a detector)
    predictor: object = None  # the predictor that answered (a swap may have installed another since)


@dataclass(frozen=True)
class Serving:
    """A predictor and the batcher that feeds it: read together, so a request never mixes two models."""

    predictor: object
    batcher: MicroBatcher


class PixelGate:
    """Pixels being decoded at once, at most ``budget`` (first come, first served; one image over the
    budget is decoded alone). Acquired on the event loop; released from any thread."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self, pixels: int) -> int:
        """Wait for room for ``pixels``; returns what to give back to :meth:`release_threadsafe`."""
        n = min(pixels, self.budget)
        self._loop = asyncio.get_running_loop()
        if not self._waiting and self.used + n <= self.budget:
            self.used += n
            return n
        turn = self._loop.create_future()
        self._waiting.append((n, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # room was granted as the request gave up
                self._release(n)
            else:
                if (n, turn) in self._waiting:
                    self._waiting.remove((n, turn))
                self._release(0)  # those behind it may fit now
            raise
        return n

    def release_threadsafe(self, n: int) -> None:
        try:
            self._loop.call_soon_threadsafe(self._release, n)
        except RuntimeError:  # the server's loop has closed: nobody waits for room any more
            pass

    def _release(self, n: int) -> None:
        self.used -= n
        while self._waiting and (self._waiting[0][1].cancelled() or self.used + self._waiting[0][0] <= self.budget):
            m, turn = self._waiting.popleft()
            if not turn.cancelled():
                self.used += m
                turn.set_result(None)


class InferenceService:
    """Holds the predictor (once loaded) and serves classification requests.

    :meth:`install` of a second predictor swaps models without a failed request: requests admitted
    before the swap finish on the old predictor and its batcher, which then stops; later ones
    meet the new one. Each request reads the (predictor, batcher) pair once.
    """

    def __init__(self, cfg: ServeConfig, metrics: Metrics):
        self.cfg = cfg
        self.metrics = metrics
        self._serving: Serving | None = None  # set by install(); the UI may read it at request time
        self.loading = False
        self.load_error: str | None = None
        self.draining = False
        self.on_load_error: Callable[[BaseException], None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._explain_pool: ThreadPoolExecutor | None = None
        self._decoding = PixelGate(cfg.max_request_pixels)
        self.keeper: Keeper | None = None  # serve.keep_inputs: answered images go to it
        metrics.model_ready.set_function(lambda: float(self.ready))
        metrics.track_queue(lambda: float(self.batcher.depth if self.batcher else 0))

    @property
    def predictor(self):
        """The predictor new requests meet (None before :meth:`install`)."""
        serving = self._serving
        return serving.predictor if serving is not None else None

    @property
    def batcher(self) -> MicroBatcher | None:
        serving = self._serving
        return serving.batcher if serving is not None else None

    @property
    def ready(self) -> bool:
        return self.predictor is not None and not self.draining

    def install(self, predictor) -> None:
        """Serve ``predictor`` (an :class:`imgclf.inference.predict.Predictor`) from now on.

        A predictor already installed is swapped out: new requests meet ``predictor`` at once, and the
        old batcher stops on a thread of its own once the requests admitted to it are answered.
        """
        if self._pool is None:
            threads = cpu_threads(getattr(predictor.engine_cfg, "threads", 0))
            self._pool = ThreadPoolExecutor(max_workers=max(2, threads), thread_name_prefix="imgclf-decode")
            self._explain_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgclf-explain")
        batcher = MicroBatcher(predictor.compute.rows, max_batch_size=self.cfg.max_batch_size,
                               max_wait_s=self.cfg.max_wait_ms / 1000.0, capacity=self.cfg.queue_size,
                               on_batch=self.metrics.observe_batch).start()
        old, self._serving = self._serving, Serving(predictor, batcher)
        if old is not None:
            threading.Thread(target=self._retire, args=(old.batcher,), name="imgclf-retire", daemon=True).start()

    def _retire(self, batcher: MicroBatcher) -> None:
        """Stop a swapped-out batcher once nothing admitted to it is left (at most the request deadline)."""
        until = time.monotonic() + self.cfg.timeout_s + 1.0
        while not batcher.stop_if_idle() and time.monotonic() < until:
            time.sleep(0.02)
        batcher.stop(timeout=self.cfg.timeout_s)

    def retire(self) -> None:
        """Close this service once the requests admitted to it are answered (a service no longer used)."""
        if self._serving is not None:
            self._retire(self._serving.batcher)
        self.close()

    def load_in_background(self, loader: Callable[[], object]) -> threading.Thread:
        """Call ``loader`` on a thread and install its predictor; ready stays 503 until then."""
        self.loading = True

        def _load() -> None:
            try:
                self.install(loader())
            except BaseException as e:  # reported to the server runner, which stops
                self.load_error = f"{type(e).__name__}: {e}"
                log.error("the model failed to load: %s", self.load_error)
                if self.on_load_error is not None:
                    self.on_load_error(e)
            finally:
                self.loading = False

        t = threading.Thread(target=_load, name="imgclf-load", daemon=True)
        t.start()
        return t

    def close(self) -> None:
        """Finish queued work and stop the worker, decode and keeper threads."""
        if self._serving is not None:
            self._serving.batcher.stop(timeout=self.cfg.timeout_s)
        if self.keeper is not None:
            self.keeper.close()
        for pool in (self._pool, self._explain_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def require_model(self):
        """The predictor, or :class:`Unavailable` while loading or without a model.

        Draining does not refuse requests: only readiness changes, so in-flight and late requests
        still complete while load balancers move away.
        """
        if self.predictor is None:
            if self.loading:
                raise Unavailable("the model is still loading; retry shortly", reason="loading", retry_after=1)
            raise Unavailable("this server has no model loaded; start it with `imgclf serve RUN_DIR/model`",
                              reason="no_model")
        return self.predictor

    async def classify(self, images: Sequence[Source], names: Sequence[str | None] | None = None) -> Classified:
        """Probabilities of each image; an ImgclfError for a request that cannot be answered."""
        self.require_model()
        n = len(images)
        if n == 0:
            raise InvalidRequest("no image in the request; send at least one image file", reason="no_image")
        if n > self.cfg.queue_size:
            raise TooManyImages(f"{n} images in one request; at most {self.cfg.queue_size} (serve.queue_size) "
                                "are accepted")
        t0 = time.perf_counter()
        serving, reservation = self._reserve(n)
        predictor = serving.predictor
        deadline = time.monotonic() + self.cfg.timeout_s
        with reservation:
            rows = await self._within_deadline(self._run(predictor, reservation, images, names, deadline))
        proba, ood = predictor.compute.split(rows)
        if self.keeper is not None:
            self.keeper.offer(images, proba, ood, predictor.compute)
        return Classified(proba, round((time.perf_counter() - t0) * 1000.0, 3), ood, predictor)

    async def explain(self, images: Sequence[Source], names: Sequence[str | None], fn: Callable[[object, Source], T]) -> T:
        """``fn(predictor, image)`` for the one image of a request, ``predictor`` the one /predict uses (an
        ImgclfError for a request that cannot be answered)."""
        self.require_model()
        if len(images) != 1:
            raise InvalidRequest(f"{len(images)} images in the request; maps are made for exactly one image per request",
                                 reason="one_image")
        serving, reservation = self._reserve(1, batched=False)
        with reservation:
            return await self._within_deadline(self._explain(serving.predictor, images, names, fn))

    async def _explain(self, predictor, images: Sequence[Source], names: Sequence[str | None],
                       fn: Callable[[object, Source], T]) -> T:
        await self._admit(images, names)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._explain_pool, fn, predictor, images[0])
        except ImageError as e:
            self._refuse_unusable([e], names)
            raise

    def _reserve(self, n: int, batched: bool = True):
        """The serving pair and room for ``n`` images in its batcher's queue, or QueueFull (503 with Retry-After).
        A batcher stopped by a swap between reading the pair and reserving sends the request to the new pair."""
        while True:
            serving = self._serving
            try:
                return serving, serving.batcher.reserve(n, batched)
            except QueueFull as e:
                if self._serving is not serving:
                    continue
                self.metrics.rejected.labels("queue_full").inc()
                raise restated(e, f"server busy: {e}; retry after {e.retry_after} s") from None

    async def _within_deadline(self, work):
        try:
            return await asyncio.wait_for(work, self.cfg.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            self.metrics.rejected.labels("deadline").inc()
            raise DeadlinePassed(f"the request took longer than serve.timeout_s={self.cfg.timeout_s} s; "
                                 "retry, or send fewer images per request") from None

    async def _admit(self, images: Sequence[Source], names) -> list:
        """The images' headers; refuses a request whose images are unusable by them, or hold too many pixels together."""
        loop = asyncio.get_running_loop()
        headers = await asyncio.gather(*(loop.run_in_executor(self._pool, read_header, data) for data in images),
                                       return_exceptions=True)
        self._refuse_unusable(headers, names)
        pixels = sum(h.pixels for h in headers)
        if pixels > self.cfg.max_request_pixels:
            self.metrics.rejected.labels(PixelBudgetExceeded.reason).inc()
            raise PixelBudgetExceeded(f"the {len(images)} image(s) of this request hold {pixels:,} pixels together; at most "
                                      f"{self.cfg.max_request_pixels:,} (serve.max_request_pixels) are decoded per request: "
                                      "send fewer or smaller images")
        return headers

    async def _run(self, predictor, reservation, images: Sequence[Source], names, deadline: float) -> np.ndarray:
        headers = await self._admit(images, names)
        decoded = await asyncio.gather(*(self._decode(predictor, data, h.pixels) for data, h in zip(images, headers)),
                                       return_exceptions=True)
        self._refuse_unusable(decoded, names)
        return await asyncio.wrap_future(reservation.submit(decoded, deadline))

    async def _decode(self, predictor, data: Source, pixels: int):
        """``predictor.compute.prepare(data)`` on the decode pool once the pixels decoding at once leave room for it.
        The room is given back when the decode ends, even after its request gave up (a started decode runs on)."""
        held = await self._decoding.acquire(pixels)
        try:
            job = self._pool.submit(predictor.compute.prepare, data)
        except BaseException:
            self._decoding.release_threadsafe(held)
            raise
        job.add_done_callback(lambda _: self._decoding.release_threadsafe(held))
        return await asyncio.wrap_future(job)

    def _refuse_unusable(self, results: Sequence[object], names) -> None:
        for i, x in enumerate(results):
            if isinstance(x, ImageError):
                self.metrics.rejected.labels(x.reason).inc()
                which = f"image {i}" + (f" ({names[i]})" if names and names[i] else "")
                if isinstance(x, ImageTooLarge):  # a readable format with too many pixels: another format would not help
                    raise restated(x, f"{which} is too large: {x.detail}")
                raise restated(x, f"{which} is not usable: {x.detail}; send a JPEG, PNG, BMP, GIF, WEBP or TIFF file")
            if isinstance(x, BaseException):
                raise x
