"""The dedup report: ``dedup_report.html`` (groups with thumbnails) and ``dedup_report.csv``.

The HTML is one self-contained file (thumbnails inlined as base64 JPEG); every name in it is
escaped. Thumbnails are drawn for the first ``max_thumbnail_groups`` groups to keep the
file small; the CSV lists every member of every group.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..data.images import ImageError, safe_thumbnail
from ..util.files import write_csv, write_text
from .dedup import DedupResult

HTML_NAME = "dedup_report.html"
CSV_NAME = "dedup_report.csv"
CSV_COLUMNS = ["group", "kind", "path", "label", "width", "height", "bytes", "distance", "action"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.group{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em}
.group h2{font-size:1em;margin:.2em 0 .6em}
figure{display:inline-block;margin:.3em;width:170px;vertical-align:top;font-size:.8em;word-break:break-all}
img{max-width:160px;max-height:160px;display:block;border:3px solid #ccc}
.keep img{border-color:#2a2}.exclude img,.move img{border-color:#c33;opacity:.75}
.tag{font-weight:bold}.keep .tag{color:#2a2}.exclude .tag,.move .tag{color:#c33}
"""


def write_dedup_report(result: DedupResult, out_dir: Path | None = None, max_thumbnail_groups: int = 300,
                       thumb_size: int = 160) -> tuple[Path, Path]:
    """Write the HTML and CSV reports (into the dataset folder by default); returns their paths."""
    out_dir = Path(out_dir or result.dataset_dir)
    csv_path, html_path = out_dir / CSV_NAME, out_dir / HTML_NAME
    rows = [[gi, g.kind, m.rel, m.label, m.width, m.height, m.bytes, m.distance, m.action]
            for gi, g in enumerate(result.groups, 1) for m in g.members]
    write_csv(csv_path, CSV_COLUMNS, rows)
    write_text(html_path, render_html(result, max_thumbnail_groups, thumb_size))
    return html_path, csv_path


def render_html(result: DedupResult, max_thumbnail_groups: int = 300, thumb_size: int = 160) -> str:
    """The report as one HTML page."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>imgclf dedup report</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Duplicates in {e(str(result.dataset_dir))}</h1><p>{e(result.summary())}</p>",
    ]
    if result.unreadable:
        parts.append("<details><summary>Unreadable files</summary><ul>")
        parts += [f"<li>{e(rel)}: {e(reason)}</li>" for rel, reason in result.unreadable]
        parts.append("</ul></details>")
    for gi, g in enumerate(result.groups, 1):
        parts.append(f"<div class='group'><h2>Group {gi}: {e(g.kind)}, {len(g.members)} images</h2>")
        for m in g.members:
            where = result.moved_to if m.action == "move" and result.moved_to else result.dataset_dir
            thumb = _thumbnail(where / m.rel, thumb_size) if gi <= max_thumbnail_groups else ""
            img = f"<img alt='' src='data:image/jpeg;base64,{thumb}'>" if thumb else ""
            parts.append(
                f"<figure class='{e(m.action)}'>{img}<figcaption><span class='tag'>{e(m.action)}</span> "
                f"{e(m.rel)}<br>{m.width}x{m.height}, {m.bytes / 1024:.0f} KiB, distance {m.distance}"
                "</figcaption></figure>"
            )
        parts.append("</div>")
    if len(result.groups) > max_thumbnail_groups:
        parts.append(f"<p>Thumbnails are shown for the first {max_thumbnail_groups} groups only.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _thumbnail(path: Path, size: int) -> str:
    try:
        img = safe_thumbnail(path, size)
    except ImageError:
        return ""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")
