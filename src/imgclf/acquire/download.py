"""Download a URL list into a dataset: ``DATASET/<label>/<sha256(url)[:16]>.<ext>``.

Broken URLs never stop the run: every line ends up as one row of ``download_report.csv``.
A file is validated by decoding it (never by its Content-Type), staged in the hidden
``DATASET/.incoming/`` folder and renamed into its class folder only when complete, so a
killed run leaves no partial file in a class folder; a re-run skips the files already there.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from ..data.images import ALLOWED_FORMATS, IMAGE_EXTENSIONS, ImageError, decode_image
from ..util.files import write_bytes, write_csv
from ..util.progress import progress_bar
from .fetch import FetchError, FetchOptions, fetch
from .urls import BadLine, UrlEntry, label_dir, read_url_list, url_file_stem

REPORT_NAME = "download_report.csv"
REPORT_COLUMNS = ["url", "label", "status", "reason", "path", "detail"]
STAGING_NAME = ".incoming"
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}


@dataclass(frozen=True)
class DownloadRow:
    """The outcome of one line: ``status`` is ok, exists, failed, skipped or malformed."""

    url: str
    label: str
    status: str
    reason: str = ""  # short code: http_404, timeout, byte_cap, truncated, ...
    path: str = ""  # relative to the dataset folder, POSIX separators
    detail: str = ""


@dataclass
class DownloadResult:
    dataset_dir: Path
    rows: list[DownloadRow]
    report_path: Path

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def failures(self) -> list[tuple[str, int]]:
        """(reason, count) of failed rows, most frequent first."""
        c = Counter(r.reason for r in self.rows if r.status == "failed")
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))

    def summary(self) -> str:
        """One line: ``ok N, exists K, failed M (reason: count, ...)``."""
        fails = self.failures()
        line = f"ok {self.count('ok')}, exists {self.count('exists')}, failed {sum(n for _, n in fails)}"
        if fails:
            line += " (" + ", ".join(f"{r}: {n}" for r, n in fails) + ")"
        for status in ("malformed", "skipped"):
            if self.count(status):
                line += f", {status} lines {self.count(status)}"
        return line


def download_url_list(
    tsv_path: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    opts: FetchOptions = FetchOptions(),
    *,
    workers: int = 8,
    progress: bool = True,
) -> DownloadResult:
    """Download every ``label<TAB>url`` line of ``tsv_path`` into ``dataset_dir``."""
    entries, bad = read_url_list(tsv_path)
    return download_entries(entries, dataset_dir, opts, workers=workers, progress=progress, bad_lines=bad)


def download_entries(
    entries: Sequence[UrlEntry],
    dataset_dir: str | os.PathLike,
    opts: FetchOptions = FetchOptions(),
    *,
    workers: int = 8,
    progress: bool = True,
    bad_lines: Sequence[BadLine] = (),
) -> DownloadResult:
    """Download ``entries`` in parallel; write the report; return every line's outcome."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    staging = dataset_dir / STAGING_NAME
    _clear_staging(staging)
    rows: dict[int, DownloadRow] = {}
    first_line: dict[tuple[str, str], int] = {}
    todo: list[tuple[int, UrlEntry]] = []
    for i, e in enumerate(entries):
        key = (e.label, e.url)
        if key in first_line:
            rows[i] = DownloadRow(e.url, e.label, "skipped", "duplicate", detail=f"same as line {first_line[key]}")
        else:
            first_line[key] = e.line
            todo.append((i, e))
    bar = progress_bar(len(todo), "download", unit="file", leave=True) if progress else None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
    try:
        futures = {pool.submit(_download_one, e, dataset_dir, staging, opts): i for i, e in todo}
        for fut in as_completed(futures):
            rows[futures[fut]] = fut.result()
            if bar is not None:
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: stop starting new files
        if bar is not None:
            bar.close()
        ordered = [rows[i] for i in sorted(rows)] + [
            DownloadRow(b.text, "", "malformed", "malformed_line", detail=f"line {b.line}: {b.reason}") for b in bad_lines
        ]
        report = dataset_dir / REPORT_NAME
        write_csv(report, REPORT_COLUMNS, ([getattr(r, c) for c in REPORT_COLUMNS] for r in ordered))
        _remove_if_empty(staging)
    return DownloadResult(dataset_dir, ordered, report)


def _download_one(entry: UrlEntry, dataset_dir: Path, staging: Path, opts: FetchOptions) -> DownloadRow:
    def row(status: str, reason: str = "", path: Path | None = None, detail: str = "") -> DownloadRow:
        rel = path.relative_to(dataset_dir.resolve()).as_posix() if path else ""
        return DownloadRow(entry.url, entry.label, status, reason, rel, detail)

    try:
        folder = label_dir(dataset_dir, entry.label)
    except ValueError as e:
        return row("failed", "bad_label", detail=str(e))
    stem = url_file_stem(entry.url)
    existing = _existing(folder, stem)
    if existing is not None:
        return row("exists", path=existing)
    try:
        data = fetch(entry.url, opts)
    except FetchError as e:
        return row("failed", e.reason, detail=e.detail)
    try:
        decode_image(data)
        fmt = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS).format  # header only: the name's extension
    except ImageError as e:
        return row("failed", e.reason, detail=e.detail)
    ext = _EXTENSIONS.get(fmt or "")
    if ext is None:
        return row("failed", "unsupported_format", detail=f"no file extension known for format {fmt}")
    final = folder / (stem + ext)
    # the staged name includes the label: one URL listed under two labels is fetched by two workers
    staged = staging / f"{url_file_stem(entry.label)}-{final.name}"
    write_bytes(staged, data)
    folder.mkdir(exist_ok=True)
    os.replace(staged, final)
    return row("ok", path=final)


def _existing(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        p = folder / (stem + ext)
        if p.is_file():
            return p
    return None


def _clear_staging(staging: Path) -> None:
    """Files left in the staging folder by a killed run are incomplete or unrenamed: drop them."""
    if staging.is_dir():
        for p in staging.iterdir():
            if p.is_file():
                p.unlink()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # absent, or another run is using it
