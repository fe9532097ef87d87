"""The UI's HTTP surface: three pages under ``/ui/`` and their JSON API under ``/ui/api/``.

Endpoints are thin: check the request, call the catalog, the thumbnail cache, the run's results
or the service (every inference goes through its batcher, as /predict's does), format. Refusals
are raised as :class:`imgclf.util.errors.ImgclfError` and answered by the service's handler like its
own (``{"error": message, "reason": code}``, the status from :mod:`imgclf.serve.errors`); the
service's middleware adds the token check and the body limit.

The pages share one frame, ``static/page.html`` (head, skip link, top bar, toast, scripts), and
the Dataset and Results pages one image viewer, ``static/viewer.html``; ``static/<page>.html``
holds only what is particular to a page, its body.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel

from ..rundir.state import incomplete_info
from ..serve.app import iteration_of
from ..serve.errors import restated
from ..util.errors import ImageError, ImageTooLarge, InvalidRequest, NotFound
from .catalog import Catalog
from .maps import add_map_routes
from .results import RunResults
from .review import Review
from .parts import NO_CACHE, needed, thumbnail_response
from .thumbs import ThumbnailCache

if TYPE_CHECKING:
    from .live import Live

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Page:
    """What the shared frame says of one page."""

    nav: str  # its link in the top bar
    title: str
    skip_to: str  # id of what a keyboard user wants first; the skip link jumps there
    skip_text: str
    viewer: bool = False  # the page enlarges images in the shared viewer (``static/viewer.html``)


PAGES = {
    "dataset": Page("Dataset", "Dataset", "grid", "Skip to the images", viewer=True),
    "results": Page("Results", "Results", "results", "Skip to the results", viewer=True),
    "try": Page("Try", "Try the model", "pick", "Skip to the image picker"),
    "label": Page("Label next", "Label next", "batch", "Skip to the batch"),
    "iterations": Page("Iterations", "Iterations", "iterations", "Skip to the iterations"),
    "train": Page("Train", "Train", "train-form", "Skip to the training form"),
}


class AnnotateIn(BaseModel):
    path: str  # image path relative to the dataset folder
    action: str  # relabel | exclude | ambiguous | restore | keep
    label: str = ""  # the new class, for relabel


class AnnotateManyIn(BaseModel):
    paths: list[str]  # image paths relative to the dataset folder
    action: str  # relabel | exclude | ambiguous | restore | keep
    label: str = ""  # the new class, for relabel


class ReviewIn(BaseModel):
    path: str  # image path relative to the dataset folder
    action: str  # accept | keep | exclude


class ReviewManyIn(BaseModel):
    paths: list[str]  # image paths relative to the dataset folder
    action: str  # accept | keep | exclude


class UndoIn(BaseModel):
    path: str = ""  # undo the newest correction of this image; empty = of any image
    paths: list[str] | None = None  # the images a page changed itself: undo the newest correction of one of them


MAX_BATCH = 5000  # images one bulk correction may name


def build_router(*, catalog: Catalog | None, live: Live, thumbs: ThumbnailCache,
                 max_body_mb: float | None = None) -> APIRouter:
    """The UI's routes over the dataset and the chosen iteration (each part may be missing: its page then says so)."""
    r = APIRouter()

    need_catalog = needed(catalog, "no dataset is loaded; start the UI with `imgclf ui --images DIR`")
    need_results = needed(lambda: live.results, "no run is loaded; start the UI with `imgclf ui --images DIR --run RUN_DIR`")

    def loaded_model(request: Request) -> Any:
        """The chosen iteration's predictor (None while the service still loads it)."""
        return live.predictor()

    _add_page_routes(r)

    @r.get("/ui/api/info")
    def info(request: Request) -> dict[str, Any]:
        """What is loaded: the dataset's counts, the run, the model's classes (and ``run_incomplete`` when the run is)."""
        model, pred = None, loaded_model(request)
        if pred is not None:
            meta = pred.bundle.meta
            model = {"labels": list(pred.labels), "backbone": meta.backbone, "resolution": meta.resolution,
                     "classifier": meta.classifier.get("type")}
        dataset, problem = None, None
        if catalog is not None:
            try:
                dataset = catalog.summary()
            except NotFound as e:  # an empty dataset folder must not hide the run and the model
                problem = e.message
        results = live.results
        incomplete = incomplete_info(results.rd.root) if results is not None else None  # see imgclf.rundir.state
        return {"dataset": dataset, "dataset_error": problem,
                "run": str(results.rd.root) if results is not None else None, "model": model,
                "model_loading": bool(pred is None and live.answering.loading), "max_body_mb": max_body_mb,
                "live": live.state(), **({"run_incomplete": incomplete} if incomplete else {})}

    _add_dataset_routes(r, need_catalog, thumbs)
    _add_bulk_routes(r, need_catalog)
    add_map_routes(r, need_results=need_results, need_catalog=need_catalog, loaded_model=loaded_model,
                   answering=lambda: live.answering)
    _add_review_routes(r, lambda: live.review)
    _add_results_routes(r, need_results, thumbs)
    _add_predict_route(r, live)
    return r


def _add_page_routes(r: APIRouter) -> None:
    """The pages (each one's body in the shared frame) and the addresses that lead to the first."""

    @r.get("/", include_in_schema=False)  # `imgclf ui` prints the page's address, but people open the server's
    @r.get("/ui", include_in_schema=False)
    @r.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/dataset", 307)

    for name in PAGES:
        r.add_api_route(f"/ui/{name}", _page(name), methods=["GET"], include_in_schema=False)


def _add_results_routes(r: APIRouter, need_results: Callable[[], RunResults], thumbs: ThumbnailCache) -> None:
    """The Results page's API: the run's predictions, their thumbnails, its report and plots."""

    @r.get("/ui/api/results")
    def results_payload(split: str = "test") -> dict[str, Any]:
        """The run's test images (``split=train``: its train images, scored out of fold) with true and
        predicted labels, scores, loss and the per-class figures."""
        return need_results().payload(split)

    @r.get("/ui/api/results/{index}/thumb")
    def result_thumb(index: int, size: int = 256, v: str = "", split: str = "test") -> Response:
        """JPEG thumbnail of result ``index`` (its row in predictions.csv, or of the train rows of
        oof_predictions.csv for ``split=train``; ``v`` as for /thumb)."""
        return thumbnail_response(thumbs, need_results().image_path(index, split), size, f"result {index}", cacheable=bool(v))

    @r.get("/ui/api/run/{name}")
    def run_file(name: str) -> Response:
        """The run's report.html (``report``) or one of its plots (``roc``, ``confusion``, ``curves``)."""
        path = need_results().file(name)
        return FileResponse(path, media_type="text/html" if path.suffix == ".html" else "image/png", headers=NO_CACHE)


def _add_predict_route(r: APIRouter, live: Live) -> None:
    """The Try page's API: one image classified by the chosen iteration's model."""

    @r.post("/ui/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """Classify the image sent as the request body with the chosen iteration's model, through a service's
        batcher like /predict (the same queue, pixel budget, deadline and memory bounds)."""
        service = live.answering
        pred = service.predictor
        if pred is None and not service.loading:
            raise NotFound("no model is loaded; start the UI with `imgclf ui --images DIR --run RUN_DIR`",
                           reason="no_model")
        data = await request.body()
        if not data:
            raise InvalidRequest("no image: send the image file as the request body", reason="empty")
        try:
            result = await service.classify([data])
        except ImageTooLarge as e:
            raise restated(e, f"image too large: {e.detail}") from None
        except ImageError as e:
            formats = "" if e.reason == "not_an_image" else "; send a JPEG, PNG, BMP, GIF, WEBP or TIFF file"  # that detail lists them
            raise restated(e, f"not a usable image: {e.detail}{formats}") from None
        pred = result.predictor  # the one that answered (another may have been chosen since)
        ood = None if result.ood is None else float(result.ood[0])
        return pred.compute.answer(result.proba[0], ood, labels=list(pred.labels), executionTimeMs=result.ms,
                                   iteration=iteration_of(pred))


def _add_dataset_routes(r: APIRouter, need_catalog: Callable[[], Catalog], thumbs: ThumbnailCache) -> None:
    """The dataset page's API: listing, thumbnails, corrections, undo, history."""

    @r.get("/ui/api/images")
    def images(label: str = "", status: str = "", q: str = "", offset: int = Query(0, ge=0),
               limit: int = Query(100, ge=1, le=500), refresh: bool = False) -> dict[str, Any]:
        """One page of the dataset's images, filtered by current class, status and path text."""
        cat = need_catalog()
        if refresh:
            cat.entries(refresh=True)
        return cat.query(label=label, status=status, q=q, offset=offset, limit=limit)

    @r.get("/ui/api/thumb")
    def thumb(path: str, size: int = 256, v: str = "") -> Response:
        """JPEG thumbnail of a dataset image (``v``, from the listing, makes the URL cacheable)."""
        entry = need_catalog().resolve(path)
        return thumbnail_response(thumbs, entry.path, size, path, cacheable=bool(v))

    @r.post("/ui/api/annotate")
    def annotate(body: AnnotateIn) -> dict[str, Any]:
        """Relabel, exclude, flag ambiguous or restore one image; saved at once to annotations.csv."""
        cat = need_catalog()
        return {"item": cat.annotate(body.path, body.action, body.label), "summary": cat.summary()}

    @r.post("/ui/api/undo")
    def undo(body: UndoIn) -> dict[str, Any]:
        """Undo the newest correction (as a new history row), of the images ``paths`` when given; says which
        image changed back, to what, and what was undone."""
        cat = need_catalog()
        return {**cat.undo(body.path, among=body.paths), "summary": cat.summary()}

    @r.get("/ui/api/history")
    def history(limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        """The newest rows of the dataset's annotations.csv."""
        return {"rows": need_catalog().history(limit)}


def _add_bulk_routes(r: APIRouter, need_catalog: Callable[[], Catalog]) -> None:
    """Corrections of several images in one step, and the paths a filter selects."""

    @r.post("/ui/api/annotate/many")
    def annotate_many(body: AnnotateManyIn) -> dict[str, Any]:
        """Relabel, exclude, flag ambiguous or restore several images: one history row each, one undo for all."""
        if not body.paths:
            raise InvalidRequest("paths is empty: select at least one image", reason="empty")
        if len(body.paths) > MAX_BATCH:
            raise InvalidRequest(f"{len(body.paths)} images in one correction; at most {MAX_BATCH}", reason="too_many")
        cat = need_catalog()
        return {**cat.annotate_many(body.paths, body.action, body.label), "summary": cat.summary()}

    @r.get("/ui/api/images/paths")
    def image_paths(label: str = "", status: str = "", q: str = "") -> dict[str, Any]:
        """Every image path of a filter (the dataset page's "select all in this filter")."""
        return {"paths": need_catalog().paths(label=label, status=status, q=q)}


def _add_review_routes(r: APIRouter, review: Callable[[], Review | None]) -> None:
    """The Review view's API: the data doctor's findings, and one decision per finding."""

    need_review = needed(review, "no run with the data doctor's findings is loaded; start the UI with "
                                 "`imgclf ui --images DIR --run RUN_DIR`", reason="no_findings")

    @r.get("/ui/api/review")
    def review_payload() -> dict[str, Any]:
        """The doctor's findings, worst first, one item per image, with the nearest train images."""
        return need_review().payload()

    @r.post("/ui/api/review/act")
    def review_act(body: ReviewIn) -> dict[str, Any]:
        """Accept the suggestion, keep the label or exclude the image; saved at once to annotations.csv."""
        rv = need_review()
        return {"item": rv.act(body.path, body.action), "summary": rv.catalog.summary()}

    @r.post("/ui/api/review/act-many")
    def review_act_many(body: ReviewManyIn) -> dict[str, Any]:
        """One decision on several findings, saved as one correction (one undo takes them all back)."""
        if len(body.paths) > MAX_BATCH:
            raise InvalidRequest(f"one review decision may name at most {MAX_BATCH} images; got {len(body.paths)}")
        rv = need_review()
        return {**rv.act_many(body.paths, body.action), "summary": rv.catalog.summary()}


def _page(name: str) -> Callable[[Request], Response]:
    def page(request: Request) -> Response:
        if "token" in request.query_params:  # the service's auth has set its cookie: drop the token from the address bar
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            return RedirectResponse(request.url.path + (f"?{query}" if query else ""), 303)
        return HTMLResponse(_render_page(name), headers=NO_CACHE)

    page.__name__ = f"{name}_page"
    return page


def _render_page(name: str) -> str:
    """The HTML of page ``name``: its body (``static/<name>.html``) in the shared frame (``static/page.html``),
    followed by the image viewer (``static/viewer.html``) on the pages that use it."""
    page = PAGES[name]
    nav = "\n".join(_nav_link(other, p.nav, current=other == name) for other, p in PAGES.items())
    frame = Template((STATIC_DIR / "page.html").read_text(encoding="utf-8"))
    body = (STATIC_DIR / f"{name}.html").read_text(encoding="utf-8").rstrip("\n")
    viewer = (STATIC_DIR / "viewer.html").read_text(encoding="utf-8").rstrip("\n") if page.viewer else ""
    return frame.substitute(title=page.title, page=name, skip_to=page.skip_to, skip_text=page.skip_text, nav=nav,
                            body=body, viewer=viewer)


def _nav_link(name: str, text: str, current: bool) -> str:
    here = ' aria-current="page"' if current else ""
    return f'      <a href="{name}"{here}>{text}</a>'
