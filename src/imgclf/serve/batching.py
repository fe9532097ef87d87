"""Micro-batching: images of concurrent requests share one engine call on one worker thread.

A request first *reserves* room for its images (a bounded budget: beyond it
:class:`imgclf.util.errors.QueueFull`, which says when to retry), decodes them, then *submits* them. The
worker takes up to ``max_batch_size`` queued images per engine call. It only waits (at most
``max_wait_s``) for a batch to fill while other reserved images are still being decoded, so a
lone request never pays the wait. Images of a request whose deadline passed, or whose caller
gave up (future cancelled), are dropped before they reach the engine: the worker is never
tied up by work nobody awaits.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..util.errors import QueueFull

RunFn = Callable[[Sequence[np.ndarray]], np.ndarray]  # (B inputs) -> (B, K)
BatchHook = Callable[[int, float], None]  # (batch size, seconds)


@dataclass(eq=False)
class _Job:
    inputs: Sequence[np.ndarray]
    deadline: float  # time.monotonic() after which nobody wants the answer
    future: Future = field(default_factory=Future)
    out: np.ndarray | None = None  # (n, K) filled row by row
    remaining: int = 0

    def expired(self, now: float) -> bool:
        return self.future.done() or now > self.deadline


def _settle(fut: Future, *, result: object = None, error: BaseException | None = None) -> None:
    """Complete ``fut`` unless its caller already cancelled it (a harmless race)."""
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass


class Reservation:
    """Room for ``n`` images in a :class:`MicroBatcher`; use as a context manager.

    Leaving the block frees the room and cancels the job if it is still pending. An unbatched
    reservation only holds room (work the caller runs itself, such as a class activation map):
    it counts against the capacity but never delays a batch and cannot be submitted.
    """

    def __init__(self, batcher: "MicroBatcher", n: int, batched: bool = True):
        self._batcher = batcher
        self.n = n
        self.batched = batched
        self._job: _Job | None = None
        self._released = False

    def submit(self, inputs: Sequence[np.ndarray], deadline: float) -> Future:
        """Queue the decoded inputs; the future yields their (n, K) outputs."""
        if not self.batched:
            raise ValueError("an unbatched reservation only holds room; it takes no inputs")
        if len(inputs) != self.n or self._job is not None:
            raise ValueError(f"a reservation of {self.n} images takes one submit of {self.n} inputs")
        self._job = _Job(inputs=inputs, deadline=deadline, remaining=len(inputs))
        self._batcher._enqueue(self._job)
        return self._job.future

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._job is not None:
            self._job.future.cancel()
        self._batcher._release(self.n, preparing=self.batched and self._job is None)

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class MicroBatcher:
    """Groups queued images into batches of at most ``max_batch_size`` for ``run``."""

    def __init__(self, run: RunFn, *, max_batch_size: int, max_wait_s: float, capacity: int,
                 on_batch: BatchHook | None = None):
        if max_batch_size < 1 or capacity < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size and capacity must be >= 1 and max_wait_s >= 0; "
                             f"got {max_batch_size}, {capacity}, {max_wait_s}")
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.capacity = capacity
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._items: deque[tuple[_Job, int]] = deque()  # (job, row) waiting for the engine
        self._reserved = 0  # images admitted and not yet answered
        self._preparing = 0  # of those, images still being decoded (not submitted yet)
        self._per_image_s = 0.05  # running estimate of engine time per image, for Retry-After
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        """Images admitted and not yet answered (decoding, queued or in the engine)."""
        return self._reserved

    def start(self) -> "MicroBatcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="imgclf-batcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued, then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def stop_if_idle(self) -> bool:
        """Stop taking reservations and end the worker, if nothing admitted is left; whether it stopped."""
        with self._cond:
            if self._reserved:
                return False
            self._stopping = True
            self._cond.notify_all()
        return True

    def reserve(self, n: int, batched: bool = True) -> Reservation:
        """Room for ``n`` images, or :class:`QueueFull` when the budget is spent (``batched=False``:
        room only, for work run outside the batches; see :class:`Reservation`)."""
        with self._cond:
            if self._stopping:
                raise QueueFull(n, self._reserved, self.capacity, retry_after=1)
            if self._reserved + n > self.capacity:
                wait = self._reserved * self._per_image_s  # time to drain what is admitted
                raise QueueFull(n, self._reserved, self.capacity, retry_after=min(60, max(1, math.ceil(wait))))
            self._reserved += n
            if batched:
                self._preparing += n
        return Reservation(self, n, batched)

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            self._preparing -= len(job.inputs)
            self._items.extend((job, i) for i in range(len(job.inputs)))
            self._cond.notify_all()

    def _release(self, n: int, preparing: bool) -> None:
        with self._cond:
            self._reserved -= n
            if preparing:
                self._preparing -= n
            self._cond.notify_all()

    def _take(self) -> list[tuple[_Job, int]]:
        """Up to max_batch_size live items; drops those of expired or cancelled jobs."""
        batch: list[tuple[_Job, int]] = []
        now = time.monotonic()
        while self._items and len(batch) < self.max_batch_size:
            job, row = self._items.popleft()
            if job.expired(now):
                _settle(job.future, error=TimeoutError("deadline passed while queued"))
                continue
            batch.append((job, row))
        return batch

    def _next_batch(self) -> list[tuple[_Job, int]] | None:
        """Block until there is work (None once stopping with nothing left)."""
        with self._cond:
            while not self._items:
                if self._stopping:
                    return None
                self._cond.wait()
            # Wait for a fuller batch only while more images are on their way.
            until = time.monotonic() + self.max_wait_s
            while len(self._items) < self.max_batch_size and self._preparing > 0 and not self._stopping:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._take()

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:
                self._compute(batch)

    def _compute(self, batch: list[tuple[_Job, int]]) -> None:
        t0 = time.perf_counter()
        try:
            out = np.asarray(self._run([job.inputs[row] for job, row in batch]))  # (B, K)
        except Exception as e:  # a bug in the engine: every caller in the batch gets it
            for job, _ in batch:
                _settle(job.future, error=e)
            return
        seconds = time.perf_counter() - t0
        self._per_image_s = 0.8 * self._per_image_s + 0.2 * seconds / len(batch)
        for (job, row), y in zip(batch, out):
            if job.out is None:
                job.out = np.empty((len(job.inputs), out.shape[1]), dtype=out.dtype)
            job.out[row] = y
            job.remaining -= 1
            if job.remaining == 0:
                _settle(job.future, result=job.out)
        if self._on_batch is not None:
            self._on_batch(len(batch), seconds)
