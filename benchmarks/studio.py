"""Studio benchmark: the web UI's pages and the live model on a real dataset, measured as a user meets them.

    python benchmarks/studio.py DIR --work W [--repeats 5] [--json out.json]

``DIR`` is an images folder (one subfolder per class; a folder with train/ is used through its
train/ part). Two iterations are trained once into ``W``'s runs folder (``--preset fast``; the
second after relabelling one image, so the two are different runs of the same dataset); then, on a
UI server in this process:

- **first content** of each page (Dataset, Results, Try, Label next, Iterations): the time from
  navigation until its first real content is on screen (thumbnails, result cards, the drop zone,
  the batch, the iteration rows), in Debian's Chromium; median of ``--repeats`` fresh tabs;
- **publish**: the POST /ui/api/publish of an iteration not loaded yet (its bundle loaded, the swap),
  and the time from its answer until Try answers with it;
- **publish under load**: 8 clients calling /predict in a loop through a publish and a rollback:
  requests answered, failed (any status but 200), and which iterations answered.
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx

PAGES = {"dataset": "#grid .tile img", "results": "#results .result", "try": "#drop",
         "label": "#batch li", "iterations": ".itrow"}
CHROMIUM = "/usr/bin/chromium"


def _images(folder: str) -> Path:
    p = Path(folder).resolve()
    return p / "train" if (p / "train").is_dir() else p


def _iterations(images: Path, work: Path) -> tuple[Path, Path, object]:
    from imgclf.api import run
    from imgclf.config.settings import load_config
    from imgclf.ui.catalog import Catalog

    cfg = load_config(None, [f'data.root="{work / "data"}"', f'data.images="{images}"', 'train.preset="fast"',
                             "tracking.enabled=false"])
    runs = work / "data" / "runs" / images.name
    first, second = runs / "20000101-000001", runs / "20000101-000002"
    if not (first / "metrics.json").exists():
        run(cfg, first, progress=False)
    if not (second / "metrics.json").exists():
        cat = Catalog(images)
        rel = cat.paths()[0]
        other = next(c for c in cat.classes() if c != cat.entries()[rel].original)
        cat.annotate(rel, "relabel", other)
        run(cfg, second, progress=False)
        cat.undo(rel)
    return first, second, cfg


def _first_content(url: str, repeats: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {name: [] for name in PAGES}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for _ in range(repeats):
            for name, selector in PAGES.items():
                ctx = browser.new_context(viewport={"width": 1366, "height": 860})
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(f"{url}/ui/{name}", wait_until="commit")
                page.wait_for_selector(selector, state="visible", timeout=60_000)
                if selector.endswith("img"):
                    page.wait_for_function("s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
                                           arg=selector, timeout=60_000)
                out[name].append(time.perf_counter() - t0)
                ctx.close()
        browser.close()
    return {name: round(statistics.median(v), 3) for name, v in out.items()}


def _publish(url: str, image: bytes, first: str, second: str) -> dict:
    with httpx.Client(base_url=url, timeout=120) as c:
        c.post("/ui/api/publish", json={"run": first}).raise_for_status()
        c.post("/ui/api/iterations/select", json={"run": first}).raise_for_status()
        t0 = time.perf_counter()
        c.post("/ui/api/publish", json={"run": second}).raise_for_status()
        publish_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        while c.post("/ui/api/predict", content=image).json().get("iteration") != second:
            pass
        try_s = time.perf_counter() - t1
    return {"publish_s": round(publish_s, 3), "try_answers_after_s": round(try_s, 3)}


def _under_load(url: str, image: bytes, first: str, second: str) -> dict:
    answered, failed, seen, stop = [0], [], set(), threading.Event()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while not stop.is_set():
                r = c.post("/predict", files={"files": ("x.jpg", image, "image/jpeg")})
                with lock:
                    if r.status_code == 200:
                        answered[0] += 1
                        seen.add(r.json()["iteration"])
                    else:
                        failed.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    with httpx.Client(base_url=url, timeout=120) as c:
        time.sleep(2)
        c.post("/ui/api/publish", json={"run": first}).raise_for_status()
        time.sleep(2)
        c.post("/ui/api/rollback").raise_for_status()
        time.sleep(2)
    stop.set()
    for t in threads:
        t.join()
    return {"answered": answered[0], "failed": len(failed), "iterations_seen": sorted(seen)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from imgclf.config.settings import ServeConfig
    from imgclf.inference.predict import Predictor
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    images = _images(args.images)
    args.work.mkdir(parents=True, exist_ok=True)
    first, second, cfg = _iterations(images, args.work.resolve())
    (first.parent / "published.json").unlink(missing_ok=True)
    image = next(p for p in sorted(images.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")).read_bytes()
    app = create_ui_app(Predictor(first / "model"), ServeConfig(), images_dir=str(images), run_dir=str(first),
                        runs=str(first.parent), cfg=cfg, thumbs_dir=str(args.work / "thumbs"))
    result = {"dataset": str(images)}
    with ServerThread(app) as srv:
        result["first_content_s"] = _first_content(srv.url, args.repeats)
        result["publish"] = _publish(srv.url, image, first.name, second.name)
        result["publish_under_load"] = _under_load(srv.url, image, first.name, second.name)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
