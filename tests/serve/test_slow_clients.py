"""Slow clients (slowloris): headers or a body dripped are cut off with 408 after a SHORT configured
timeout, before the token check, and cannot hold the connection slots; legitimate clients, slow
but moving uploads included, still get answers. Bounds are generous multiples of the timeout:
these tests assert that the connection ends with 408, never how fast."""
from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Iterator

import httpx
import pytest
from serve_helpers import jpeg, metric, running, server_errors
import web

TIMEOUT_S = 1.0  # serve.header_timeout_s and serve.body_timeout_s of these servers
GIVE_UP_S = 45.0  # a drip still connected after this long was never cut off
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def guarded(predictor) -> Iterator[tuple[str, int]]:
    """A server with a token, short header/body timeouts and only 6 connection slots."""
    with running(predictor, token=TOKEN, header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S, body_min_rate=1000,
                 max_connections=6) as (url, _):
        yield url, int(url.rsplit(":", 1)[1])


def _drip(port: int, first: bytes, drop: bytes, every_s: float = 0.25) -> tuple[bytes, float]:
    """Send ``first``, then ``drop`` every ``every_s`` until the server answers or closes; returns
    (what it answered, seconds connected)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S)
    t0 = time.monotonic()
    s.sendall(first)
    s.settimeout(every_s)
    got = b""
    try:
        while time.monotonic() - t0 < GIVE_UP_S:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break  # closed by the server
                got += chunk
            except socket.timeout:
                try:
                    s.sendall(drop)
                except OSError:  # closed while we were writing
                    s.settimeout(5)
                    try:
                        got += s.recv(65536)
                    except OSError:
                        pass
                    break
            except ConnectionResetError:
                break
    finally:
        s.close()
    return got, time.monotonic() - t0


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _json(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def _metrics(url: str) -> str:
    return web.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text


@pytest.mark.slow
def test_slow_client_dripping_headers_is_cut_off_with_408_before_the_token_check(guarded):
    url, port = guarded
    answer, seconds = _drip(port, b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Drip: 1\r\n")
    assert _status(answer) == 408, answer[:200]  # not 401: it never got as far as the token check
    assert _json(answer)["reason"] == "request_timeout" and "serve.header_timeout_s" in _json(answer)["error"]
    assert seconds < GIVE_UP_S
    assert metric(_metrics(url), "imgclf_rejected_total", reason="header_timeout") >= 1


@pytest.mark.slow
def test_slow_client_dripping_a_body_is_cut_off_with_408(guarded):
    url, port = guarded
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() +
            b"\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
    answer, seconds = _drip(port, head, b"\xff")
    assert _status(answer) == 408 and _json(answer)["reason"] == "request_timeout", answer[:200]
    assert "serve.body_timeout_s" in _json(answer)["error"] and seconds < GIVE_UP_S
    text = _metrics(url)
    assert metric(text, "imgclf_rejected_total", reason="body_timeout") >= 1
    assert server_errors(text) == 0 and metric(text, "imgclf_client_disconnects_total") == 0


@pytest.mark.slow
def test_a_connection_that_sends_nothing_is_closed(guarded):
    _, port = guarded
    answer, _ = _drip(port, b"", b"", every_s=GIVE_UP_S)  # connect and wait: never sends a byte
    assert _status(answer) == 408


@pytest.mark.slow
def test_slow_clients_cannot_exhaust_the_connection_slots(guarded):
    url, port = guarded
    hogs = [socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S) for _ in range(6)]  # every slot
    try:
        for s in hogs:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\n")  # and never finish the headers
        deadline = time.monotonic() + GIVE_UP_S
        status = None
        while time.monotonic() < deadline:  # the hogs are cut off after the header timeout; then we get in
            try:
                status = web.get(url + "/v2/models/imgclf", headers={"Authorization": f"Bearer {TOKEN}"},
                                   timeout=10).status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200
        for s in hogs:
            s.settimeout(10)
            assert s.recv(65536).startswith(b"HTTP/1.1 408"), "each hog was answered 408 and closed"
    finally:
        for s in hogs:
            s.close()


@pytest.mark.slow
def test_a_slow_but_moving_upload_earns_time_and_is_answered(guarded):
    _, port = guarded
    body = json.dumps({"input_df": [{"image base64 string": "x" * 20_000}]}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S)
    try:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        for i in range(0, len(body), 5000):  # each 5 kB earns 5 s at body_min_rate = 1000 B/s
            s.sendall(body[i:i + 5000])
            time.sleep(0.2)
        answer = s.recv(65536)
    finally:
        s.close()
    assert _status(answer) == 400, answer[:200]  # the app read it all and judged it (bad base64), no 408


def test_legitimate_clients_are_answered_by_a_guarded_server(guarded):
    url, _ = guarded
    r = web.post(url + "/predict", content=jpeg(3), headers={"Authorization": f"Bearer {TOKEN}",
                                                               "Content-Type": "image/jpeg"}, timeout=60)
    assert r.status_code == 200 and r.json()["predictions"][0]["label"]
    assert web.get(url + "/v2/health/live", timeout=10).json() == {"live": True}


def test_a_body_over_the_limit_sent_whole_by_urllib_reads_the_413(predictor):
    with running(predictor, max_body_mb=1.0) as (url, _):
        req = urllib.request.Request(url + "/predict", data=b"\xff" * (8 << 20), headers={"Content-Type": "image/jpeg"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=60)
        assert e.value.code == 413 and json.loads(e.value.read())["reason"] == "body_too_large"


def test_malformed_content_length_gets_the_json_400(server):
    port = int(server.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12abc\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    finally:
        s.close()
    assert _status(answer) == 400 and b"application/json" in answer.partition(b"\r\n\r\n")[0]
    assert _json(answer)["reason"] == "bad_http"


def test_head_on_the_health_probes(server):
    for path in ("/v2/health/live", "/v2/health/ready"):
        r = httpx.head(server + path, timeout=30)
        assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("key, value", [("header_timeout_s", 0.0), ("body_timeout_s", -1.0), ("body_min_rate", 0),
                                        ("max_request_pixels", 0)])
def test_guard_settings_are_checked(key, value):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.util.errors import ConfigError

    with pytest.raises(ConfigError, match=f"serve.{key} must be"):
        create_app(None, ServeConfig(**{key: value}))
