"""Running a coroutine to its end from plain code, whether or not this thread already runs an event loop."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``; in a thread whose event loop is running (a Jupyter notebook, a sync
    Playwright session), on a thread of its own, where ``asyncio.run`` would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgclf-aio") as pool:
        return pool.submit(asyncio.run, coro).result()
