"""Grow a dataset by image search: items x attributes → queries → URL list → download.

The 2017 sample queried "<attribute> <item>" for every clothing item and texture attribute
and labelled the results by attribute; ``label_by`` also allows the item or both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

from ..util.errors import ImgclfError
from ..util.files import write_text
from .download import DownloadResult, download_url_list
from .fetch import FetchOptions
from .providers import PROVIDERS, ImageSearchProvider, ProviderError, get_provider
from .urls import MAX_URL_CHARS, clean_label, format_url_list, label_problem

LabelBy = Literal["attribute", "item", "item_attribute"]
URL_LIST_NAME = "scrape_urls.tsv"
COPYRIGHT_NOTICE = (
    "Images found by search belong to their authors. Check each image's licence before you train on it, "
    "and before you share the images or a model trained on them."
)


@dataclass(frozen=True)
class Query:
    text: str
    item: str
    attribute: str
    label: str


@dataclass
class ScrapeResult:
    provider: str
    queries: list[Query]
    url_list: Path
    urls: int  # distinct URLs written to the list
    download: DownloadResult
    failed_queries: list[tuple[str, str]] = field(default_factory=list)  # (query, reason)
    conflicts: int = 0  # URLs found for two labels: kept under the first only


def synthesise_queries(items: Sequence[str], attributes: Sequence[str], label_by: LabelBy = "attribute") -> list[Query]:
    """One query "<attribute> <item>" per pair, labelled by ``label_by``."""
    items = [clean_label(i) for i in items if i.strip()]
    attributes = [clean_label(a) for a in attributes if a.strip()]
    if not items or not attributes:
        raise ImgclfError(
            f"scraping needs at least one item and one attribute; got items {items} and attributes {attributes}",
            hint="e.g. --items blouse,shirt --attributes striped,dotted",
        )
    queries = []
    for item in items:
        for attr in attributes:
            label = {"attribute": attr, "item": item, "item_attribute": f"{item}_{attr}"}.get(label_by)
            if label is None:
                raise ImgclfError(f"label_by must be one of attribute, item, item_attribute; got {label_by!r}")
            problem = label_problem(label)
            if problem:
                raise ImgclfError(f"cannot make a class folder for query {attr} {item}: {problem}",
                                  hint="use plain words for items and attributes")
            queries.append(Query(f"{attr} {item}", item, attr, label))
    return queries


def choose_provider(name: str, probe: str, per_query: int) -> tuple[ImageSearchProvider, list[str]]:
    """The provider ``name`` (or with "auto" the first that answers), and its URLs for ``probe``."""
    names = list(PROVIDERS) if name == "auto" else [name]
    reasons = []
    for n in names:
        provider = get_provider(n)
        problem = provider.problem()
        if problem:
            reasons.append(f"{n}: {problem}")
            continue
        try:
            return provider, provider.search(probe, per_query)
        except ProviderError as e:
            reasons.append(f"{n}: {e}")
    raise ImgclfError(
        "no image-search provider is reachable (" + "; ".join(reasons) + ")",
        hint="check the internet connection, set BRAVE_SEARCH_API_KEY for the brave provider, "
        "or write a label<TAB>url list yourself and run `imgclf download`",
    )


def scrape(
    items: Sequence[str],
    attributes: Sequence[str],
    dataset_dir: str | os.PathLike,
    *,
    per_query: int = 50,
    provider: str = "auto",
    label_by: LabelBy = "attribute",
    opts: FetchOptions = FetchOptions(),
    workers: int = 8,
    progress: bool = True,
) -> ScrapeResult:
    """Search every query, write ``DATASET/scrape_urls.tsv``, then download it into the dataset."""
    if per_query < 1:
        raise ImgclfError(f"per_query must be >= 1; got {per_query}")
    queries = synthesise_queries(items, attributes, label_by)
    chosen, first = choose_provider(provider, queries[0].text, per_query)
    label_of: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    conflicts = 0
    for i, q in enumerate(queries):
        try:
            urls = first if i == 0 else chosen.search(q.text, per_query)
        except ProviderError as e:
            failed.append((q.text, str(e)))
            continue
        for url in urls:
            if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
                continue  # cannot be a line of the list; would be refused anyway
            if url not in label_of:
                label_of[url] = q.label
            elif label_of[url] != q.label:
                conflicts += 1
    dataset_dir = Path(dataset_dir)
    url_list = dataset_dir / URL_LIST_NAME
    comments = [f"imgclf scrape via {chosen.name}: {len(queries)} queries, {per_query} results each, labels by {label_by}"]
    write_text(url_list, format_url_list([(lab, url) for url, lab in label_of.items()], comments))
    result = download_url_list(url_list, dataset_dir, opts, workers=workers, progress=progress)
    return ScrapeResult(chosen.name, queries, url_list, len(label_of), result, failed, conflicts)
