"""The UI without a token against DNS rebinding (a foreign Host header), and GET / on `imgclf ui`."""
from __future__ import annotations

import httpx

from imgclf.data.annotations import annotations_path


def test_dns_rebinding_page_cannot_write_corrections_or_read_the_dataset_path(server, dataset):
    foreign = {"Host": f"attacker.example:{server.port}"}
    body = {"path": "circles/circles_000.jpg", "action": "exclude"}
    r = httpx.post(server.url + "/ui/api/annotate", json=body, headers=foreign, timeout=30)
    assert r.status_code == 421 and r.json()["reason"] == "foreign_host"
    assert not annotations_path(dataset).exists(), "no row written"
    info = httpx.get(server.url + "/ui/api/info", headers=foreign, timeout=30)
    assert info.status_code == 421 and str(dataset) not in info.text
    page = httpx.get(server.url + "/ui/dataset", headers=foreign, timeout=30)
    assert page.status_code == 421


def test_loopback_host_names_reach_the_ui(server, dataset):
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert httpx.get(server.url + "/ui/api/info", headers={"Host": host}, timeout=30).status_code == 200
    r = httpx.post(server.url + "/ui/api/annotate", json={"path": "circles/circles_000.jpg", "action": "exclude"},
                   headers={"Host": f"localhost:{server.port}"}, timeout=30)
    assert r.status_code == 200 and annotations_path(dataset).exists()


def test_root_redirects_to_the_ui(server):
    r = httpx.get(server.url + "/", timeout=30)
    assert r.status_code == 307 and r.headers["location"] == "/ui/dataset"
    assert httpx.get(server.url + "/", follow_redirects=True, timeout=30).status_code == 200
