"""The URL list: ``label<TAB>url`` lines (the 2017 sample's fashionTextureUrls.tsv format).

``#`` comments and blank lines are allowed; a first line ``label<TAB>url`` is taken as a header.
A malformed line is reported with its number and skipped, never fatal. Labels become folder
names, so anything that could escape the dataset folder is refused here.
"""
from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

MAX_LABEL_CHARS = 100
MAX_URL_CHARS = 4096
_FORBIDDEN_IN_LABEL = set('/\\:*?"<>|%\0')


@dataclass(frozen=True)
class UrlEntry:
    line: int  # 1-based line number in the list
    label: str
    url: str


@dataclass(frozen=True)
class BadLine:
    line: int
    text: str  # the line as read (shortened)
    reason: str


def label_problem(label: str) -> str:
    """Why ``label`` cannot name a class folder, or "" when it can."""
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL_CHARS:
        return f"label longer than {MAX_LABEL_CHARS} characters"
    if label in (".", "..") or label.startswith("."):
        return f"label {label!r} starts with a dot"
    bad = sorted({c for c in label if c in _FORBIDDEN_IN_LABEL or unicodedata.category(c).startswith("C")})
    if bad:
        return f"label {label!r} contains {', '.join(repr(c) for c in bad)}"
    if label != label.strip():
        return f"label {label!r} has leading or trailing spaces"
    return ""


def clean_label(label: str) -> str:
    """``label`` trimmed and in Unicode NFC (the same word typed twice names one folder)."""
    return unicodedata.normalize("NFC", label.strip())


def url_file_stem(url: str) -> str:
    """The file name (without extension) for ``url``: never derived from the URL's own path."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def label_dir(dataset_dir: str | os.PathLike, label: str) -> Path:
    """``dataset_dir/label``, refusing a label whose folder would not sit directly inside it."""
    problem = label_problem(label)
    if problem:
        raise ValueError(problem)
    root = Path(dataset_dir).resolve()
    folder = (root / label).resolve()
    if folder.parent != root:
        raise ValueError(f"label {label!r} does not name a folder directly inside {root}")
    return folder


def parse_url_list(text: str) -> tuple[list[UrlEntry], list[BadLine]]:
    """Entries and malformed lines of a URL list's text."""
    entries: list[UrlEntry] = []
    bad: list[BadLine] = []
    seen_content = False
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        while len(fields) > 2 and not fields[-1]:
            fields.pop()  # trailing tabs from spreadsheets
        if not seen_content and [f.lower() for f in fields] == ["label", "url"]:
            seen_content = True
            continue
        seen_content = True
        if len(fields) != 2:
            bad.append(BadLine(n, _shorten(line), f"expected 2 tab-separated fields (label, url), found {len(fields)}"))
            continue
        label, url = clean_label(fields[0]), fields[1]
        problem = label_problem(label)
        if problem:
            bad.append(BadLine(n, _shorten(line), problem))
        elif not url:
            bad.append(BadLine(n, _shorten(line), "empty url"))
        elif len(url) > MAX_URL_CHARS:
            bad.append(BadLine(n, _shorten(line), f"url longer than {MAX_URL_CHARS} characters"))
        elif any(c.isspace() for c in url):
            bad.append(BadLine(n, _shorten(line), "url contains spaces"))
        else:
            entries.append(UrlEntry(n, label, url))
    return entries, bad


def read_url_list(path: str | os.PathLike) -> tuple[list[UrlEntry], list[BadLine]]:
    """Parse the URL list file at ``path`` (UTF-8, a byte-order mark is ignored)."""
    return parse_url_list(Path(path).read_text(encoding="utf-8-sig", errors="replace"))


def format_url_list(entries: Sequence[tuple[str, str]], comments: Sequence[str] = ()) -> str:
    """The text of a URL list with ``(label, url)`` rows and ``#`` comment lines first."""
    lines = [f"# {c}" for c in comments] + [f"{label}\t{url}" for label, url in entries]
    return "\n".join(lines) + "\n"


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
