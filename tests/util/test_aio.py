"""A coroutine run to its end from plain code, also where the thread already runs an event loop (a notebook)."""
from __future__ import annotations

import asyncio
import threading

from imgclf.util.aio import run_sync


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_runs_without_a_loop_and_inside_a_running_one():
    assert run_sync(_double(1)) == 2  # this thread may run a loop (a browser test's) or not: either way
    got: list[int] = []

    def fresh_thread() -> None:  # no loop running here, then one running, as in Jupyter
        got.append(run_sync(_double(2)))

        async def inside() -> int:
            return run_sync(_double(5))

        got.append(asyncio.run(inside()))

    t = threading.Thread(target=fresh_thread)
    t.start()
    t.join()
    assert got == [4, 10]
