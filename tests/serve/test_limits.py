"""The body limit: 413 before the body is read (declared or streamed), the limit itself accepted."""
from __future__ import annotations

import io
import json
import socket
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from serve_helpers import rss_mb, running

LIMIT_MB = 0.5
LIMIT = int(LIMIT_MB * 2**20)


@pytest.fixture(scope="module")
def small_server(predictor):
    with running(predictor, max_body_mb=LIMIT_MB) as (url, _):
        yield url


def _connect(url: str) -> socket.socket:
    u = urlsplit(url)
    return socket.create_connection((u.hostname, u.port), timeout=10)


def _read_response(s: socket.socket, timeout: float = 10) -> tuple[int, dict]:
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest[:length])


def test_declared_oversize_body_is_refused_before_it_is_sent(small_server):
    s = _connect(small_server)
    t0 = time.perf_counter()
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
              b"Content-Length: 104857600\r\n\r\n" + b"\xff" * 1000)  # declares 100 MB, sends 1 kB
    status, body = _read_response(s)
    s.close()
    assert status == 413 and body["reason"] == "body_too_large"
    assert str(LIMIT) in body["error"]
    assert time.perf_counter() - t0 < 5


def test_chunked_oversize_body_is_refused_without_waiting_for_its_end(small_server):
    s = _connect(small_server)
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"\xab" * 65536
    for _ in range(LIMIT // len(chunk) + 2):  # just past the limit, and no final 0-chunk: the body never ends
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    status, body = _read_response(s)
    s.close()
    assert status == 413 and body["reason"] == "body_too_large"


def _png_of_size(n: int) -> bytes:
    """A valid PNG of exactly n bytes (noise pixels, then padding Pillow ignores after IEND)."""
    side = int((n / 3.2) ** 0.5)
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG", compress_level=0)
    data = buf.getvalue()
    assert len(data) <= n
    return data + b"\x00" * (n - len(data))


def test_body_at_the_limit_works_and_one_byte_more_does_not(small_server, client):
    at_limit = _png_of_size(LIMIT)
    r = client.post(small_server + "/predict", content=at_limit, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    r = client.post(small_server + "/predict", content=at_limit + b"\x00", headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and r.json()["reason"] == "body_too_large"


def test_oversize_bodies_leave_memory_flat(small_server):
    before = rss_mb()
    for _ in range(20):
        s = _connect(small_server)
        s.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2000000000\r\n\r\n")
        status, _ = _read_response(s)
        s.close()
        assert status == 413
    assert rss_mb() - before < 20
