"""Image-search providers, built by name through :data:`imgclf.util.registry.PROVIDERS`.

A provider turns a text query into image URLs. ``brave`` (Brave Image Search API, needs
``BRAVE_SEARCH_API_KEY``) and ``ddgs`` (DuckDuckGo and friends through the ``ddgs`` package,
no account) ship here; others register with :func:`register_provider`. A failed search
raises :class:`imgclf.util.errors.ProviderError`.
"""
from __future__ import annotations

import os
from typing import Callable, Protocol

from ..util.errors import ProviderError
from ..util.registry import PROVIDERS


class ImageSearchProvider(Protocol):
    name: str

    def problem(self) -> str:
        """Why this provider cannot be used as configured, or "" when it can."""

    def search(self, query: str, max_results: int) -> list[str]:
        """Image URLs for ``query``, best first; raises :class:`ProviderError`."""


ProviderFactory = Callable[[], ImageSearchProvider]
register_provider = PROVIDERS.register  # a provider class (or ProviderFactory) available as ``name``


def get_provider(name: str) -> ImageSearchProvider:
    """The provider registered as ``name``; an unknown name lists the known ones."""
    return PROVIDERS.lookup(name)()


@register_provider("brave")
class BraveProvider:
    """Brave Image Search API (https://api.search.brave.com), with an API key."""

    name = "brave"
    ENV = "BRAVE_SEARCH_API_KEY"
    ENDPOINT = "https://api.search.brave.com/res/v1/images/search"
    MAX_COUNT = 200  # the API's largest page

    def __init__(self, api_key: str | None = None, endpoint: str = ENDPOINT, timeout: float = 15.0):
        self.api_key = os.environ.get(self.ENV, "") if api_key is None else api_key
        self.endpoint = endpoint
        self.timeout = timeout

    def problem(self) -> str:
        return "" if self.api_key else f"no API key (set {self.ENV})"

    def search(self, query: str, max_results: int) -> list[str]:
        import httpx

        if not self.api_key:
            raise ProviderError(self.problem())
        try:
            r = httpx.get(
                self.endpoint,
                params={"q": query, "count": min(max_results, self.MAX_COUNT), "safesearch": "strict"},
                headers={"X-Subscription-Token": self.api_key, "Accept": "application/json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as e:
            raise ProviderError(f"{type(e).__name__}: {e}") from None
        if r.status_code in (401, 403):
            raise ProviderError(f"the API key in {self.ENV} was refused (HTTP {r.status_code})")
        if r.status_code != 200:
            raise ProviderError(f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            results = r.json().get("results", [])
        except ValueError:
            raise ProviderError("the answer is not JSON") from None
        urls = [(res.get("properties") or {}).get("url") for res in results if isinstance(res, dict)]
        return [u for u in urls if isinstance(u, str) and u][:max_results]


@register_provider("ddgs")
class DdgsProvider:
    """DuckDuckGo (and the other engines ``ddgs`` aggregates); no account needed."""

    name = "ddgs"

    def __init__(self, timeout: int = 10, region: str = "us-en", safesearch: str = "moderate"):
        self.timeout = timeout
        self.region = region
        self.safesearch = safesearch

    def problem(self) -> str:
        try:
            import ddgs  # noqa: F401
        except ImportError:
            return "the ddgs package is not installed (pip install ddgs)"
        return ""

    def search(self, query: str, max_results: int) -> list[str]:
        try:
            from ddgs import DDGS

            results = DDGS(timeout=self.timeout).images(
                query, max_results=max_results, region=self.region, safesearch=self.safesearch
            )
        except Exception as e:  # ddgs wraps network, rate-limit and parsing errors alike
            raise ProviderError(f"{type(e).__name__}: {str(e)[:300]}") from None
        return [r["image"] for r in results if isinstance(r.get("image"), str)][:max_results]
