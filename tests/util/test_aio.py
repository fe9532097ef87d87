"""A coroutine run to its end from plain code, also where the thread already runs an event loop (a notebook)."""
from __future__ import annotations

import asyncio

from imgclf.util.aio import run_sync


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_runs_without_a_loop_and_inside_a_running_one():
    assert run_sync(_double(2)) == 4

    async def inside() -> int:  # as in Jupyter: this thread's loop is running
        return run_sync(_double(5))

    assert asyncio.run(inside()) == 10
