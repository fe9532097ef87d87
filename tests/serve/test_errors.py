"""Bad input gets a 4xx JSON reason, never a 500, and the server keeps serving."""
from __future__ import annotations

import base64

import pytest
from serve_helpers import encode, gif_bomb, jpeg, metric, picture, png_bomb, rss_mb, server_errors
import web

_JSON = {"Content-Type": "application/json"}


def _error(r, status: int, reason: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _infer(images: list[str], **inp: object) -> dict:
    return {"inputs": [{"name": "image", "shape": [len(images)], "datatype": "BYTES", "data": images, **inp}]}


@pytest.mark.parametrize("data, status, reason", [
    (b"hello, not an image", 400, "not_an_image"),
    (b"", 400, "empty"),
    (jpeg(1)[:400], 400, None),  # truncated: "truncated" or "corrupt" depending on where it stops
    (encode(picture(2), "PPM"), 415, "unsupported_format"),
    (encode(picture(2), "TGA"), 415, "unsupported_format"),
    (encode(picture(2), "EPS"), 415, "unsupported_format"),
    (png_bomb(), 413, "too_large"),
    (gif_bomb(), 413, "too_large"),
], ids=["text", "empty", "truncated", "ppm", "tga", "eps", "png-bomb", "gif-bomb"])
def test_unusable_images_are_refused(server, client, data, status, reason):
    r = client.post(server + "/predict", content=data, headers={"Content-Type": "application/octet-stream"})
    _error(r, status, reason)
    r = client.post(server + "/score", json={"input_df": [{"image base64 string": _b64(data)}]}) if data else None
    if r is not None:
        _error(r, status, reason)
        _error(client.post(server + "/v2/models/imgclf/infer", json=_infer([_b64(data)])), status, reason)


def test_one_bad_file_names_itself(server, client):
    files = [("files", ("good.jpg", jpeg(1), "image/jpeg")), ("files", ("bad.jpg", b"garbage", "image/jpeg"))]
    body = _error(client.post(server + "/predict", files=files), 400, "not_an_image")
    assert "image 1 (bad.jpg)" in body["error"]


def test_predict_refuses_wrong_kinds_of_body(server, client):
    _error(client.post(server + "/predict", json={"x": 1}), 415, "unsupported_media_type")
    _error(client.post(server + "/predict", data={"a": "b"}), 400, "not_an_image")  # taken as a raw body
    _error(client.post(server + "/predict", files=[("text", (None, "only a field"))]), 400, "no_image")
    no_boundary = client.post(server + "/predict", content=b"--x\r\n\r\n", headers={"Content-Type": "multipart/form-data"})
    _error(no_boundary, 400)
    garbled = client.post(server + "/predict", content=b"\x00\xff" * 100,
                          headers={"Content-Type": "multipart/form-data; boundary=abc"})
    assert garbled.status_code in (400, 422), garbled.text


def test_score_and_infer_refuse_malformed_json_and_base64(server, client):
    _error(client.post(server + "/score", content=b"{not json", headers=_JSON), 422, "invalid_request")
    _error(client.post(server + "/score", json={"input_df": [{"wrong key": "x"}]}), 422, "invalid_request")
    _error(client.post(server + "/score", json={"input_df": []}), 422, "invalid_request")
    _error(client.post(server + "/score", json={"input_df": [{"image base64 string": "@@@not base64@@@"}]}), 400,
           "invalid_base64")
    url = server + "/v2/models/imgclf/infer"
    _error(client.post(url, content=b"[1, 2", headers=_JSON), 400, "invalid_request")
    _error(client.post(url, json={"inputs": []}), 400, "invalid_request")
    _error(client.post(url, json=_infer(["%%%"])), 400, "invalid_base64")
    _error(client.post(url, json=_infer([_b64(jpeg(1))], datatype="FP32")), 400, "invalid_input")
    _error(client.post(url, json=_infer([_b64(jpeg(1))], shape=[3])), 400, "invalid_input")
    _error(client.post(url, json=_infer([123])), 400, "invalid_base64")
    _error(client.post(url, json={**_infer([_b64(jpeg(1))]), "outputs": [{"name": "nope"}]}), 400, "invalid_output")
    two = {"inputs": _infer([_b64(jpeg(1))])["inputs"] * 2}
    _error(client.post(url, json=two), 400, "invalid_input")


def test_unknown_models_routes_and_methods(server, client):
    _error(client.get(server + "/v2/models/other"), 404, "unknown_model")
    _error(client.get(server + "/v2/models/other/ready"), 404, "unknown_model")
    _error(client.get(server + "/v2/models/imgclf/versions/7"), 404, "unknown_model")
    _error(client.post(server + "/v2/models/other/infer", json=_infer([_b64(jpeg(1))])), 404, "unknown_model")
    _error(client.get(server + "/no/such/route"), 404, "not_found")
    _error(client.get(server + "/predict"), 405, "method_not_allowed")


def test_too_many_images_in_one_request(server, client):
    files = [("files", (f"{i}.jpg", jpeg(i, size=32), "image/jpeg")) for i in range(65)]
    body = _error(client.post(server + "/predict", files=files), 400, "bad_multipart")
    assert "64" in body["error"]  # the form parser stops at serve.queue_size files
    many = _infer([_b64(jpeg(1, size=32))] * 65)
    _error(client.post(server + "/v2/models/imgclf/infer", json=many), 413, "too_many_images")


@pytest.mark.slow
def test_multipart_abuse_is_refused_with_flat_memory(server, client):
    fields = "&".join(f"f{i}=x" for i in range(5000))
    many_fields = [("f%d" % i, (None, "x")) for i in range(5000)]
    before = rss_mb()
    for _ in range(3):
        _error(client.post(server + "/predict", files=many_fields), 400, "bad_multipart")
        huge_field = [("note", (None, "x" * (4 * 2**20))), ("files", ("a.jpg", jpeg(1), "image/jpeg"))]
        _error(client.post(server + "/predict", files=huge_field), 400, "bad_multipart")
        _error(client.post(server + "/predict", content=fields, headers={"Content-Type": "application/x-www-form-urlencoded"}),
               400, "not_an_image")
    assert rss_mb() - before < 60
    assert client.post(server + "/predict", content=jpeg(1)).status_code == 200  # still serving


def test_bad_input_never_reaches_the_catch_all(server, client):
    """Runs after the others in this module: none of them was answered by the 500 handler."""
    text = client.get(server + "/metrics").text
    assert server_errors(text) == 0
    assert metric(text, "imgclf_requests_total", endpoint="/predict", method="POST", status="400") >= 5


@pytest.mark.slow
def test_the_status_table_decides_and_errors_outside_it_are_bugs():
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.serve.errors import status_of
    from imgclf.serve.server import ServerThread
    from imgclf.util.errors import BundleError, ImageError, ImageTooLarge, InvalidRequest, NotFound, QueueFull, UnsupportedFormat

    errors = [ImageError("corrupt", "x"), ImageTooLarge("too_large", "x"), UnsupportedFormat("unsupported_format", "x"),
              NotFound("x"), InvalidRequest("x"), QueueFull(1, 2, 2, retry_after=7), BundleError("x")]
    assert [status_of(e) for e in errors] == [400, 413, 415, 404, 400, 503, None]
    app = create_app(None, ServeConfig())

    @app.get("/full")
    def full() -> None:
        raise errors[5]

    @app.get("/broken")
    def broken() -> None:
        raise errors[6]

    with ServerThread(app) as srv, web.client(base_url=srv.url) as c:
        r = c.get("/full")
        assert (r.status_code, r.headers["retry-after"], r.json()["reason"]) == (503, "7", "queue_full")
        r = c.get("/broken")
        assert (r.status_code, r.json()["reason"]) == (500, "internal")
        assert metric(c.get("/metrics").text, "imgclf_internal_errors_total") == 1
