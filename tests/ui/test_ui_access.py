"""Who reaches the UI: a foreign Host header (DNS rebinding) is refused without a token, loopback names are
served, GET / leads to the pages, and pages behind a token open once with it and then use the cookie."""
from __future__ import annotations

import pytest
from ui_helpers import wait_images_loaded
import web

from imgclf.data.annotations import annotations_path, current_state


def test_dns_rebinding_page_cannot_write_corrections_or_read_the_dataset_path(server, dataset):
    foreign = {"Host": f"attacker.example:{server.port}"}
    body = {"path": "circles/circles_000.jpg", "action": "exclude"}
    r = web.post(server.url + "/ui/api/annotate", json=body, headers=foreign, timeout=30)
    assert r.status_code == 421 and r.json()["reason"] == "foreign_host"
    assert not annotations_path(dataset).exists(), "no row written"
    info = web.get(server.url + "/ui/api/info", headers=foreign, timeout=30)
    assert info.status_code == 421 and str(dataset) not in info.text
    page = web.get(server.url + "/ui/dataset", headers=foreign, timeout=30)
    assert page.status_code == 421


def test_loopback_host_names_reach_the_ui(server, dataset):
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert web.get(server.url + "/ui/api/info", headers={"Host": host}, timeout=30).status_code == 200
    r = web.post(server.url + "/ui/api/annotate", json={"path": "circles/circles_000.jpg", "action": "exclude"},
                   headers={"Host": f"localhost:{server.port}"}, timeout=30)
    assert r.status_code == 200 and annotations_path(dataset).exists()


def test_root_redirects_to_the_ui(server):
    r = web.get(server.url + "/", timeout=30)
    assert r.status_code == 307 and r.headers["location"] == "/ui/dataset"
    assert web.get(server.url + "/", follow_redirects=True, timeout=30).status_code == 200


@pytest.mark.slow
@pytest.mark.browser
def test_pages_behind_a_token_open_once_with_it_and_then_use_the_cookie(browser, ui_run, dataset):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(None, ServeConfig(), token="s3cret", images_dir=str(dataset), run_dir=None,
                        thumbs_dir=str(ui_run["base"] / "thumbs"))
    with ServerThread(app) as srv:
        ctx = browser.new_context()
        pg = ctx.new_page()
        assert pg.goto(f"{srv.url}/ui/dataset").status == 401
        pg.goto(f"{srv.url}/ui/dataset?token=s3cret")
        assert pg.url.split("#")[0] == f"{srv.url}/ui/dataset", "the token leaves the address bar"
        pg.wait_for_selector(".tile")
        wait_images_loaded(pg, ".tile img")
        pg.locator(".tile").first.click()
        pg.keyboard.press("x")
        pg.wait_for_selector('.tile[data-status="excluded"]')
        assert len(current_state(dataset)) == 1
        assert pg.goto(f"{srv.url}/ui/results").status == 200
        pg.wait_for_selector(".empty")
        assert "no run is loaded" in pg.locator(".empty").inner_text()
        ctx.close()
