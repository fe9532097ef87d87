"""The UI's class activation maps: ``GET /ui/api/explain`` over a run's test image or a dataset image.

Images are addressed as everywhere in the UI (a result's row in predictions.csv, or a path
relative to the dataset folder), never by a free path. The map is the loaded model's (see
:mod:`imgclf.inference.explain`), made by the service like /explain's (its queue, pixel budget,
deadline and map thread): a PNG overlay the size of a thumbnail, or the numbers with ``format=json``.
"""
from __future__ import annotations

from typing import Any, Callable, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ..serve.errors import restated
from ..util.errors import ImageError, InvalidRequest, NotFound
from .parts import NO_CACHE  # the map changes with the model
from .thumbs import SIZES



def add_map_routes(r: APIRouter, *, need_results: Callable[[], Any], need_catalog: Callable[[], Any],
                   loaded_model: Callable[[Request], Any], answering: Callable[[], Any]) -> None:
    """``GET /ui/api/explain`` on router ``r``: maps made by ``answering()``, the service of the chosen iteration."""

    @r.get("/ui/api/explain")
    async def explain(request: Request, result: int | None = Query(None, ge=0, description="Row of the run's predictions.csv."),
                      path: str = Query("", description="Image path relative to the dataset folder."),
                      which: Literal["predicted", "true"] = "predicted",
                      cls: str = Query("", alias="class", max_length=200, description="Class to map (overrides which)."),
                      size: int = 256, format: Literal["png", "json"] = "png") -> Response:
        """Where the chosen iteration's model finds a class in one image: its predicted class, its true class (a
        test result's), or ``class``."""
        pred = loaded_model(request)
        if pred is None:
            raise NotFound("no model is loaded; start the UI with `imgclf ui --images DIR --run RUN_DIR`", reason="no_model")
        if size not in SIZES:
            raise InvalidRequest(f"size must be one of {', '.join(map(str, SIZES))}; got {size}")
        if (result is None) == (not path):
            raise InvalidRequest("give one image: result=<row of the run's results> or path=<path in the dataset folder>")
        if result is not None:
            file, what = need_results().image_path(result), f"result {result}"
            truth = need_results().label_of(result)
        else:
            file, what, truth = need_catalog().resolve(path).path, path, None
        if not cls and which == "true":
            if truth is None:
                raise InvalidRequest("which=true needs a test result (result=...); for a dataset image pass class=NAME")
            cls = truth
        try:
            out = await answering().explain([file], [what], lambda p, source: _answer(p, source, cls, size, format))
        except OSError as err:
            raise NotFound(f"{what} cannot be read ({err.strerror or err}); reload the page", reason="unreadable") from None
        except ImageError as err:
            raise restated(err, f"{what} is not a usable image ({err.detail})") from None
        if format == "json":
            return JSONResponse(out, headers=NO_CACHE)
        return Response(out, media_type="image/png", headers=NO_CACHE)


def _answer(pred: Any, source: str, cls: str, size: int, format: str) -> Any:
    """The map of ``source`` as JSON numbers or PNG bytes (run on the service's map thread)."""
    e = pred.explain(source, [cls] if cls else [])
    return e.to_dict() if format == "json" else e.overlay_png(cls or None, size)
