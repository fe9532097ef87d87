"""The peak resident memory of this process while a block runs (a bound tests assert, never a timing)."""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Iterator

import psutil


@dataclass
class Rss:
    base: int  # bytes at the start of the block
    peak: int  # the highest sample while it ran

    @property
    def grew_mb(self) -> float:
        return (self.peak - self.base) / 2**20


@contextlib.contextmanager
def peak_rss(every_s: float = 0.01) -> Iterator[Rss]:
    """Sample this process's RSS every ``every_s`` seconds while the block runs; the Rss it yields holds the peak."""
    me = psutil.Process()
    rss = Rss(me.memory_info().rss, me.memory_info().rss)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss.peak = max(rss.peak, me.memory_info().rss)
            done.wait(every_s)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield rss
    finally:
        done.set()
        sampler.join()
