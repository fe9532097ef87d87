"""Scraping: query synthesis, providers (real HTTP against loopback), URL list, download."""
from __future__ import annotations

import json

import pytest
from acquire_helpers import send

from imgclf.acquire.fetch import FetchOptions
from imgclf.acquire.providers import PROVIDERS, BraveProvider, DdgsProvider, ProviderError, get_provider
from imgclf.acquire.scrape import scrape, synthesise_queries
from imgclf.acquire.urls import read_url_list
from imgclf.util.errors import ImgclfError

OPTS = FetchOptions(allow_private=True, retries=0, deadline=5)


class LoopbackProvider:
    """A real provider plugin: answers every query with image URLs of the test server."""

    name = "loopback"

    def __init__(self, server, fail_on: str = ""):
        self.server = server
        self.fail_on = fail_on
        self.queries: list[str] = []

    def problem(self) -> str:
        return ""

    def search(self, query: str, max_results: int) -> list[str]:
        self.queries.append(query)
        if query == self.fail_on:
            raise ProviderError("rate limited")
        seed = sum(map(ord, query)) * 10
        urls = [self.server.url(f"/img/{seed + k}.jpg") for k in range(max_results)]
        return urls + [self.server.url("/img/1.jpg"), "http://x/with space.jpg"]  # shared by all queries; unlistable


@pytest.fixture
def loopback(server):
    provider = LoopbackProvider(server, fail_on="dotted shirt")
    with PROVIDERS.registered("loopback", lambda: provider):  # registered for this test only
        yield provider


def test_query_synthesis_and_labels():
    qs = synthesise_queries(["blouse", " shirt "], ["striped", "dotted"])
    assert [(q.text, q.label) for q in qs] == [("striped blouse", "striped"), ("dotted blouse", "dotted"),
                                               ("striped shirt", "striped"), ("dotted shirt", "dotted")]
    assert [q.label for q in synthesise_queries(["t-shirt"], ["leopard"], "item")] == ["t-shirt"]
    assert [q.label for q in synthesise_queries(["t-shirt"], ["leopard"], "item_attribute")] == ["t-shirt_leopard"]
    with pytest.raises(ImgclfError, match="label_by"):
        synthesise_queries(["a"], ["b"], "colour")  # type: ignore[arg-type]
    with pytest.raises(ImgclfError, match="class folder"):
        synthesise_queries(["shirt"], ["../etc"])
    with pytest.raises(ImgclfError, match="at least one item"):
        synthesise_queries([""], ["b"])


def test_scrape_end_to_end_through_a_registered_provider(loopback, server, tmp_path):
    res = scrape(["blouse", "shirt"], ["striped", "dotted"], tmp_path, per_query=3, provider="loopback",
                 opts=OPTS, workers=4, progress=False)
    assert res.provider == "loopback"
    assert loopback.queries == ["striped blouse", "dotted blouse", "striped shirt", "dotted shirt"]
    assert res.failed_queries == [("dotted shirt", "rate limited")]
    assert res.urls == 3 * 3 + 1 and res.conflicts == 1  # /img/1.jpg came for both labels: first kept
    entries, bad = read_url_list(res.url_list)
    assert bad == [] and len(entries) == 10
    assert {e.label for e in entries} == {"striped", "dotted"}
    assert res.download.summary() == "ok 10, exists 0, failed 0"
    assert len(list((tmp_path / "striped").iterdir())) == 7 and len(list((tmp_path / "dotted").iterdir())) == 3
    again = scrape(["blouse", "shirt"], ["striped", "dotted"], tmp_path, per_query=3, provider="loopback",
                   opts=OPTS, progress=False)
    assert again.download.summary() == "ok 0, exists 10, failed 0"  # resumable


def test_no_reachable_provider_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("BRAVE_SEARCH_API_KEY", raising=False)
    monkeypatch.setenv("DDGS_PROXY", "http://127.0.0.1:9")  # nothing listens: fails online or offline
    with pytest.raises(ImgclfError) as e:
        scrape(["shirt"], ["striped"], tmp_path, provider="auto", progress=False)
    msg = str(e.value)
    assert msg.startswith("no image-search provider is reachable (brave: no API key (set BRAVE_SEARCH_API_KEY); ddgs: ")
    assert "imgclf download" in e.value.hint
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(ImgclfError, match="expected one of: brave, ddgs"):
        get_provider("bing")
    assert isinstance(get_provider("ddgs"), DdgsProvider)


def test_brave_provider_speaks_the_api(server):
    seen = {}

    def api(h, q):
        seen.update(q, token=h.headers.get("X-Subscription-Token"))
        if h.headers.get("X-Subscription-Token") != "secret":
            send(h, b'{"error": "unauthorized"}', 401, "application/json")
            return
        results = [{"title": "t", "properties": {"url": f"https://img.example/{k}.jpg"}} for k in range(3)]
        results.append({"title": "no image"})
        send(h, json.dumps({"type": "images", "results": results}).encode(), ctype="application/json")

    server.routes["/res/v1/images/search"] = api
    brave = BraveProvider(api_key="secret", endpoint=server.url("/res/v1/images/search"))
    assert brave.problem() == ""
    assert brave.search("striped shirt", 2) == ["https://img.example/0.jpg", "https://img.example/1.jpg"]
    assert seen["q"] == "striped shirt" and seen["count"] == "2" and seen["token"] == "secret"
    with pytest.raises(ProviderError, match="refused"):
        BraveProvider(api_key="wrong", endpoint=server.url("/res/v1/images/search")).search("x", 5)
    assert "BRAVE_SEARCH_API_KEY" in BraveProvider(api_key="").problem()
