"""Requests the attacker's and the careless user's probes sent: a client hanging up mid-body, a
request of small files that decode huge, a foreign Host header on a token-less server."""
from __future__ import annotations

import io
import socket
import struct
import time
import zlib

import pytest
from serve_helpers import encode, jpeg, metric, picture, running, server_errors
import web


def _hang_up(port: int, head: bytes, part: bytes) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(head + part)
    time.sleep(0.2)
    s.close()


@pytest.mark.slow
def test_client_hanging_up_mid_body_is_counted_apart_not_as_an_internal_error(predictor):
    with running(predictor) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        raw = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
        boundary = b"b0undary"
        multipart = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=" + boundary +
                     b"\r\nContent-Length: 100000\r\n\r\n")
        part = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n' + jpeg(1)[:500]
        score = b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        _hang_up(port, raw, jpeg(2)[:500])
        _hang_up(port, multipart, part)
        _hang_up(port, score, b'{"input_df": [{"image base64 string": "')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = web.get(url + "/metrics", timeout=30).text
            if metric(text, "imgclf_client_disconnects_total") >= 3:
                break
            time.sleep(0.2)
        assert metric(text, "imgclf_client_disconnects_total") == 3
        assert metric(text, "imgclf_internal_errors_total") == 0 and server_errors(text) == 0
        assert metric(text, "imgclf_requests_total", endpoint="/predict", method="POST", status="499") == 2
        assert web.post(url + "/predict", content=jpeg(3), headers={"Content-Type": "image/jpeg"}, timeout=60).status_code == 200


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _files(*images: bytes) -> list:
    return [("files", (f"{i}.png", io.BytesIO(data), "image/png")) for i, data in enumerate(images)]


def test_request_over_the_pixel_budget_is_413_before_decoding(predictor):
    img = encode(picture(1, 100), "PNG")  # 10,000 pixels each
    with running(predictor, max_request_pixels=25_000) as (url, _):
        ok = web.post(url + "/predict", files=_files(img, img), timeout=60)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
        r = web.post(url + "/predict", files=_files(img, img, img), timeout=60)
        assert r.status_code == 413 and r.json()["reason"] == "pixel_budget"
        assert "30,000 pixels" in r.json()["error"] and "serve.max_request_pixels" in r.json()["error"]
        text = web.get(url + "/metrics", timeout=30).text
        assert metric(text, "imgclf_rejected_total", reason="pixel_budget") == 1


def test_small_file_that_decodes_huge_is_413_at_the_server(server):
    data = _png_claiming(9450, 9450)  # 89.3 Mpx in under 200 bytes
    r = web.post(server + "/predict", content=data, headers={"Content-Type": "image/png"}, timeout=60)
    assert r.status_code == 413 and r.json()["reason"] == "too_large" and "images.max_pixels" in r.json()["error"]


def test_serve_host_default_is_loopback():
    from imgclf.config.settings import ServeConfig, load_config
    from imgclf.serve.server import bind_is_loopback, check_bind

    assert ServeConfig().host == "127.0.0.1" == load_config().serve.host
    assert bind_is_loopback(ServeConfig().host)
    check_bind(ServeConfig().host, None, insecure=False)  # the default needs no token
    from imgclf.util.errors import ImgclfError

    with pytest.raises(ImgclfError, match="without a token"):
        check_bind("0.0.0.0", None, insecure=False)


@pytest.mark.parametrize("host, ok", [("127.0.0.1:8000", True), ("localhost:8000", True), ("LOCALHOST", True),
                                      ("[::1]:8000", True), ("127.9.9.9", True), ("app.localhost", True),
                                      ("attacker.example:8000", False), ("127.0.0.1.attacker.example", False),
                                      ("10.0.0.5:8000", False), ("[2001:db8::1]:80", False)])
def test_foreign_host_header_is_refused_without_a_token(server, host, ok):
    r = web.get(server + "/v2/models/imgclf", headers={"Host": host}, timeout=30)
    if ok:
        assert r.status_code == 200
    else:
        assert r.status_code == 421 and r.json()["reason"] == "foreign_host" and "serve.allowed_hosts" in r.json()["error"]


def test_health_probes_answer_any_host_and_a_token_lifts_the_host_check(predictor):
    with running(predictor) as (url, _):
        assert web.get(url + "/v2/health/live", headers={"Host": "10.1.2.3:80"}, timeout=30).status_code == 200
    with running(predictor, token="t0k") as (url, _):
        r = web.get(url + "/v2/models/imgclf", headers={"Host": "model.internal", "Authorization": "Bearer t0k"}, timeout=30)
        assert r.status_code == 200
        assert web.get(url + "/v2/models/imgclf", headers={"Host": "model.internal"}, timeout=30).status_code == 401


@pytest.mark.slow
def test_allowed_hosts_adds_names(predictor):
    with running(predictor, allowed_hosts=["imgclf.lan"]) as (url, _):
        assert web.get(url + "/v2/models/imgclf", headers={"Host": "imgclf.lan:8000"}, timeout=30).status_code == 200
        assert web.get(url + "/v2/models/imgclf", headers={"Host": "other.lan"}, timeout=30).status_code == 421
    with running(predictor, allowed_hosts=["*"]) as (url, _):
        assert web.get(url + "/v2/models/imgclf", headers={"Host": "other.lan"}, timeout=30).status_code == 200
