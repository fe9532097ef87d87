"""Token auth on every route but the health probes, browser cookie, bind policy, no-model app."""
from __future__ import annotations

import threading

import pytest
from cliutil import refused
from fastapi.responses import PlainTextResponse
from serve_helpers import jpeg, running
import web


TOKEN = "s3cret tok;en=x"  # odd characters on purpose: the cookie must quote them


@pytest.fixture(scope="module")
def secured(predictor):
    with running(predictor, token=TOKEN) as (url, app):
        yield url, app


def test_health_probes_need_no_token(secured):
    url, _ = secured
    assert web.get(url + "/v2/health/live").json() == {"live": True}
    assert web.get(url + "/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize("method, path", [
    ("POST", "/predict"), ("POST", "/explain"), ("POST", "/score"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json"),
    ("GET", "/v2"), ("GET", "/v2/models/imgclf"), ("GET", "/v2/models/imgclf/ready"),
    ("POST", "/v2/models/imgclf/infer"), ("GET", "/no/such/route"),
])
def test_every_other_route_needs_the_token(secured, method, path):
    url, _ = secured
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN}):
        r = web.request(method, url + path, headers=headers, content=b"x")
        assert r.status_code == 401, (path, headers, r.text)
        assert r.json()["reason"] == "unauthorized" and r.headers["www-authenticate"].startswith("Bearer")


def test_bearer_token_lets_requests_in(secured):
    url, _ = secured
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = web.post(url + "/predict", content=jpeg(1), headers={**auth, "Content-Type": "image/jpeg"}, timeout=60)
    assert r.status_code == 200 and r.json()["predictions"][0]["label"]
    assert web.get(url + "/metrics", headers=auth).status_code == 200


def test_browser_opens_a_page_once_with_the_token_then_uses_the_cookie(secured):
    url, app = secured

    @app.get("/later-page", include_in_schema=False)  # a route added after create_app, like the UI's
    def later_page() -> PlainTextResponse:
        return PlainTextResponse("hello")

    with web.client(base_url=url) as browser:
        assert browser.get("/later-page").status_code == 401
        first = browser.get("/docs", params={"token": TOKEN})
        assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
        assert "SameSite=Strict" in first.headers["set-cookie"]
        assert browser.get("/openapi.json").status_code == 200  # the cookie is enough now
        assert browser.get("/later-page").text == "hello"
    assert web.post(url + "/score", params={"token": TOKEN}, json={}).status_code == 401  # query only on GET
    assert web.get(url + "/later-page", params={"token": "wrong"}).status_code == 401


def test_non_loopback_bind_needs_a_token_or_insecure():
    from imgclf.serve.server import bind_is_loopback, check_bind
    from imgclf.util.errors import ImgclfError

    assert all(bind_is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"))
    assert not any(bind_is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com"))
    check_bind("127.0.0.1", None, False)
    check_bind("0.0.0.0", "t", False)
    check_bind("0.0.0.0", None, True)
    with pytest.raises(ImgclfError, match="refusing to serve on 0.0.0.0"):
        check_bind("0.0.0.0", None, False)


def test_cli_refuses_an_open_public_bind(bundle_dir, monkeypatch, capsys):
    monkeypatch.delenv("IMGCLF_TOKEN", raising=False)
    assert refused(["serve", str(bundle_dir), "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0" in err and "--insecure" in err


def test_app_without_a_model_and_while_loading(predictor):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.serve.server import ServerThread

    with ServerThread(create_app(None, ServeConfig())) as srv:
        assert web.get(srv.url + "/v2/health/live").status_code == 200
        assert web.get(srv.url + "/v2/health/ready").status_code == 503
        assert web.get(srv.url + "/v2/models/imgclf").json()["reason"] == "no_model"
        r = web.post(srv.url + "/predict", content=jpeg(1))
        assert r.status_code == 503 and r.json()["reason"] == "no_model"

    gate = threading.Event()
    app = create_app(None, ServeConfig())
    with ServerThread(app) as srv:
        app.state.imgclf.load_in_background(lambda: gate.wait(60) and predictor)
        ready = web.get(srv.url + "/v2/health/ready")
        assert ready.status_code == 503 and "loading" in ready.json()["error"]
        r = web.post(srv.url + "/predict", content=jpeg(1))
        assert r.status_code == 503 and r.json()["reason"] == "loading" and r.headers["retry-after"] == "1"
        assert web.get(srv.url + "/v2/models/imgclf/ready").status_code == 503
        gate.set()
        for _ in range(500):
            if web.get(srv.url + "/v2/health/ready").status_code == 200:
                break
            threading.Event().wait(0.01)
        assert web.post(srv.url + "/predict", content=jpeg(1), timeout=60).status_code == 200


def test_the_ui_mounted_after_create_app_is_guarded(predictor, tmp_path):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(predictor, ServeConfig(), token=TOKEN, images_dir=None, run_dir=None, thumbs_dir=str(tmp_path))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with ServerThread(app) as srv:
        for path in ("/ui/dataset", "/ui/api/info", "/ui/static/common.js", "/ui/static/missing.js"):
            assert web.get(srv.url + path).status_code == 401, path
        assert web.get(srv.url + "/ui/static/common.js", headers=auth).status_code == 200
        assert web.get(srv.url + "/ui/static/missing.js", headers=auth).status_code == 404
        r = web.get(srv.url + "/ui/api/images", headers=auth)  # the UI's refusals come from the service's handler
        assert (r.status_code, r.json()["reason"]) == (404, "not_found")


def test_tokens_must_be_printable_ascii(predictor):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.util.errors import ImgclfError

    for bad in ("tøken", "a\nb"):
        with pytest.raises(ImgclfError, match="printable ASCII"):
            create_app(predictor, ServeConfig(), token=bad)
