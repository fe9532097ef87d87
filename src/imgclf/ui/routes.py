"""The UI's HTTP surface: three pages under ``/ui/`` and their JSON API under ``/ui/api/``.

Endpoints are thin: check the request, call the catalog, the thumbnail cache, the run's results
or the predictor, format. Every refusal is a 4xx ``{"error": message, "reason": code}``, the
service's error shape; the service's middleware adds the token check and the body limit.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Coroutine
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..images import ImageError
from .catalog import Catalog, UIError
from .results import RunResults
from .thumbs import SIZES, ThumbnailCache

STATIC_DIR = Path(__file__).parent / "static"
PAGES = ("dataset", "results", "try")
_IMMUTABLE = {"Cache-Control": "private, max-age=31536000, immutable"}  # thumbnail URLs carry a version
_NO_CACHE = {"Cache-Control": "no-cache"}


class _JSONErrorRoute(APIRoute):
    """Answers UIError with the service's JSON error shape, on the UI's routes only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except UIError as e:
                return JSONResponse({"error": e.message, "reason": e.reason}, e.status)

        return route


class AnnotateIn(BaseModel):
    path: str  # image path relative to the dataset folder
    action: str  # relabel | exclude | ambiguous | restore
    label: str = ""  # the new class, for relabel


class UndoIn(BaseModel):
    path: str = ""  # undo the newest correction of this image; empty = of any image


def build_router(*, catalog: Catalog | None, results: RunResults | None, predictor: Any,
                 thumbs: ThumbnailCache) -> APIRouter:
    """The UI's routes over what was loaded (each part may be None: its page then says so)."""
    r = APIRouter(route_class=_JSONErrorRoute)

    def need_catalog() -> Catalog:
        if catalog is None:
            raise UIError(404, "no dataset is loaded; start the UI with `imgclf ui --images DIR`")
        return catalog

    def need_results() -> RunResults:
        if results is None:
            raise UIError(404, "no run is loaded; start the UI with `imgclf ui --images DIR --run RUN_DIR`")
        return results

    def loaded_model(request: Request) -> Any:
        """The predictor given, else the one the service loads in the background (None until loaded)."""
        return predictor or getattr(getattr(request.app.state, "imgclf", None), "predictor", None)

    @r.get("/ui", include_in_schema=False)
    @r.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/dataset", 307)

    for name in PAGES:
        r.add_api_route(f"/ui/{name}", _page(name), methods=["GET"], include_in_schema=False)

    @r.get("/ui/api/info")
    def info(request: Request) -> dict[str, Any]:
        """What is loaded: the dataset's counts, the run, the model's classes."""
        model, pred = None, loaded_model(request)
        if pred is not None:
            meta = pred.bundle.meta
            model = {"labels": list(pred.labels), "backbone": meta.get("backbone"),
                     "resolution": meta.get("resolution"), "classifier": meta.get("classifier", {}).get("type")}
        dataset, problem = None, None
        if catalog is not None:
            try:
                dataset = catalog.summary()
            except UIError as e:  # an empty dataset folder must not hide the run and the model
                problem = e.message
        return {"dataset": dataset, "dataset_error": problem,
                "run": str(results.rd.root) if results is not None else None, "model": model}

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
        return _thumbnail(thumbs, entry.path, size, path, cacheable=bool(v))

    @r.post("/ui/api/annotate")
    def annotate(body: AnnotateIn) -> dict[str, Any]:
        """Relabel, exclude, flag ambiguous or restore one image; saved at once to annotations.csv."""
        cat = need_catalog()
        return {"item": cat.annotate(body.path, body.action, body.label), "summary": cat.summary()}

    @r.post("/ui/api/undo")
    def undo(body: UndoIn) -> dict[str, Any]:
        """Undo the newest correction (as a new history row); says which image changed back."""
        cat = need_catalog()
        return {**cat.undo(body.path), "summary": cat.summary()}

    @r.get("/ui/api/history")
    def history(limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        """The newest rows of the dataset's annotations.csv."""
        return {"rows": need_catalog().history(limit)}

    @r.get("/ui/api/results")
    def results_payload() -> dict[str, Any]:
        """The run's test images with true and predicted labels, scores and the confusion matrix."""
        return need_results().payload(catalog)

    @r.get("/ui/api/results/{index}/thumb")
    def result_thumb(index: int, size: int = 256, v: str = "") -> Response:
        """JPEG thumbnail of test result ``index`` (its row in predictions.csv; ``v`` as for /thumb)."""
        return _thumbnail(thumbs, need_results().image_path(index), size, f"result {index}", cacheable=bool(v))

    @r.post("/ui/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """Classify the image sent as the request body with the loaded model."""
        pred = loaded_model(request)
        if pred is None:
            raise UIError(404, "no model is loaded; start the UI with `imgclf ui --images DIR --run RUN_DIR`", "no_model")
        data = await request.body()
        if not data:
            raise UIError(400, "no image: send the image file as the request body", "empty")
        return await run_in_threadpool(_classify, pred, data)

    return r


def _page(name: str) -> Callable[[Request], Response]:
    def page(request: Request) -> Response:
        if "token" in request.query_params:  # the service's auth has set its cookie: drop the token from the address bar
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            return RedirectResponse(request.url.path + (f"?{query}" if query else ""), 303)
        return FileResponse(STATIC_DIR / f"{name}.html", headers=_NO_CACHE)

    page.__name__ = f"{name}_page"
    return page


def _thumbnail(thumbs: ThumbnailCache, path: str, size: int, what: str, cacheable: bool) -> Response:
    if size not in SIZES:
        raise UIError(400, f"size must be one of {', '.join(map(str, SIZES))}; got {size}")
    try:
        data = thumbs.get(path, size)
    except OSError as e:
        raise UIError(404, f"{what} cannot be read ({e.strerror or e}); reload the page", "unreadable") from None
    except ImageError as e:
        raise UIError(e.status, f"{what} is not a usable image ({e.detail}); exclude it with x", e.reason) from None
    return Response(data, media_type="image/jpeg", headers=_IMMUTABLE if cacheable else _NO_CACHE)


def _classify(predictor: Any, data: bytes) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        x = predictor.prepare(data)
    except ImageError as e:
        raise UIError(e.status, f"not a usable image: {e.detail}; send a JPEG, PNG, BMP, GIF, WEBP or TIFF file",
                      e.reason) from None
    proba = predictor.predict_arrays([x])[0]
    return predictor.result(proba, labels=list(predictor.labels),
                            executionTimeMs=round((time.perf_counter() - t0) * 1000, 3))
