"""/explain under the service's limits (queue, pixel budget, a map's work bounded by the image's pixels),
its own words for a JSON body, and the lingering close facing a client that already reset the connection."""
from __future__ import annotations

import concurrent.futures
import io
import logging
import socket
import struct
import time

import numpy as np
import pytest
from memutil import peak_rss
from PIL import Image
from serve_helpers import metric, server_errors
import web

from imgclf.serve.batching import MicroBatcher
from imgclf.util.errors import QueueFull
from imgclf.util.aio import run_sync


def test_json_posted_to_explain_is_told_about_explain(server, client):
    r = client.post(server + "/explain", json={"image": "x"})
    assert r.status_code == 415 and r.json()["reason"] == "unsupported_media_type"
    assert r.json()["error"].startswith("/explain takes image files") and "/predict" not in r.json()["error"]
    r = client.post(server + "/predict", json={"image": "x"})
    assert r.json()["error"].startswith("/predict takes image files") and "/score" in r.json()["error"]


@pytest.mark.slow
def test_the_map_of_a_long_thin_image_costs_what_its_pixels_cost(server, client):
    """A 39,000,000 x 1 PNG (under the pixel limits): its overlay is scaled down by a box reduction first,
    not by a Lanczos filter as wide as the scale factor (which allocated 1.7 GB)."""
    buf = io.BytesIO()
    Image.new("RGB", (39_000_000, 1), (120, 30, 200)).save(buf, "PNG")
    with peak_rss() as rss:
        r = client.post(server + "/explain", content=buf.getvalue(), headers={"Content-Type": "image/png"}, params={"size": 512})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (512, 1)
    assert rss.grew_mb < 800, f"+{rss.grew_mb:.0f} MB for one map"
    assert server_errors(client.get(server + "/metrics").text) == 0


def test_a_room_only_reservation_counts_against_the_queue_and_takes_no_inputs():
    batcher = MicroBatcher(lambda xs: np.stack([np.asarray(x, dtype=np.float64) for x in xs]),
                           max_batch_size=4, max_wait_s=0.0, capacity=2).start()
    try:
        with batcher.reserve(1, batched=False) as held:
            assert batcher.depth == 1
            with pytest.raises(QueueFull):
                batcher.reserve(2)
            with pytest.raises(ValueError):
                held.submit([np.zeros(3)], time.monotonic() + 5)
            with batcher.reserve(1) as r:
                out = r.submit([np.ones(3)], time.monotonic() + 30).result(timeout=30)
            np.testing.assert_array_equal(out, np.ones((1, 3)))
        assert batcher.depth == 0
    finally:
        batcher.stop(timeout=5)


def _on_loop(loop, fn):
    """Run ``fn()`` on the server's event loop; its result, or the exception it raised."""
    done: concurrent.futures.Future = concurrent.futures.Future()

    def call() -> None:
        try:
            done.set_result(fn())
        except BaseException as e:  # handed back to the test
            done.set_exception(e)

    loop.call_soon_threadsafe(call)
    return done.result(timeout=30)


def test_a_client_that_reset_the_connection_before_the_lingering_close_is_counted_not_logged(predictor, caplog):
    """The 503 and 413 paths answer before the body is read and close lingering; a flooding client has
    often reset the connection by then (the write side's shutdown fails with ENOTCONN)."""
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.serve.server import ServerThread

    cfg = ServeConfig()
    app = create_app(predictor, cfg)
    caplog.set_level(logging.DEBUG)
    with ServerThread(app, cfg) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 100000\r\n\r\nab")
        until = time.monotonic() + 30
        while not (protocols := [p for p in srv.server.server_state.connections if p.body_incoming()]):
            assert time.monotonic() < until, "the server never saw the request's body start"
            time.sleep(0.01)
        proto = protocols[0]
        _on_loop(proto.loop, proto.transport.pause_reading)  # the reset stays unnoticed until the close, as under a flood
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        time.sleep(0.2)
        _on_loop(proto.loop, proto.transport.close)  # what h11 does once an early answer is sent
        until = time.monotonic() + 30
        while not proto.transport.is_closing():
            assert time.monotonic() < until
            time.sleep(0.01)
        text = web.get(srv.url + "/metrics").text
    assert metric(text, "imgclf_client_disconnects_total") >= 1
    assert server_errors(text) == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]



def test_the_pixels_decoding_at_once_stay_within_the_budget():
    """First come, first served; a request that gives up while waiting lets those behind it in."""
    import asyncio

    from imgclf.serve.service import PixelGate

    async def scenario() -> list[str]:
        gate, seen = PixelGate(10), []

        async def decode(name: str, pixels: int, hold: asyncio.Event) -> None:
            n = await gate.acquire(pixels)
            seen.append(f"{name}+{gate.used}")
            await hold.wait()
            gate.release_threadsafe(n)

        go = {k: asyncio.Event() for k in "abcd"}
        a = asyncio.create_task(decode("a", 6, go["a"]))
        await asyncio.sleep(0)
        b = asyncio.create_task(decode("b", 6, go["b"]))  # waits: 12 > 10
        c = asyncio.create_task(decode("c", 3, go["c"]))  # waits behind b, although 9 <= 10
        d = asyncio.create_task(decode("d", 50, go["d"]))  # over the budget: decoded alone
        await asyncio.sleep(0.05)
        assert seen == ["a+6"]
        b.cancel()  # b's request gave up: c gets in beside a
        await asyncio.sleep(0.05)
        assert seen == ["a+6", "c+9"]
        go["a"].set()
        go["c"].set()
        await asyncio.sleep(0.05)
        assert seen[-1] == "d+10"
        go["d"].set()
        await asyncio.gather(a, c, d)
        await asyncio.sleep(0.05)
        assert gate.used == 0
        return seen

    assert run_sync(scenario()) == ["a+6", "c+9", "d+10"]
