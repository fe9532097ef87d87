"""The Iterations page's API: every run of the dataset, the chosen and the published one, compare, download.

``GET /ui/api/live`` is what every page polls (a few bytes): the chosen and the published iteration
and a version that moves with every switch, so no page keeps answering with a model it no longer names.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from ..data.annotations import FILENAME as ANNOTATIONS_FILE
from ..data.annotations import annotations_path
from ..evaluation.compare import compare_runs
from ..rundir.iterations import check_iteration, list_iterations, read_published, rollback_target
from ..util.errors import InvalidRequest, NotFound
from ..util.files import csv_cell
from .catalog import Catalog
from .live import Live
from .parts import NO_CACHE


class RunIn(BaseModel):
    run: str  # an iteration's name (its folder in the runs folder), or its run directory's path


def _name(live: Live, run: str) -> str:
    """The iteration name of ``run`` (a name, or a path inside the runs folder)."""
    if not run:
        raise InvalidRequest("run is empty: name an iteration", reason="no_iteration")
    p = Path(run)
    if p.is_absolute() or len(p.parts) > 1:
        if live.runs is None or p.resolve().parent != live.runs:
            raise NotFound(f"{run} is not an iteration of this dataset's runs folder {live.runs}", reason="no_iteration")
        return p.resolve().name
    return run


def build_iterations_router(live: Live, catalog: Catalog | None, *, token_required: bool = False) -> APIRouter:
    """The routes of the Iterations page (``/ui/api/iterations``, ``/ui/api/publish``, ``/ui/api/download/...``)."""
    r = APIRouter()

    @r.get("/ui/api/live")
    def live_state() -> Any:
        """The chosen and the published iteration, and the version of this pair (pages poll it). A publish made
        elsewhere (another UI on the same runs folder) is followed from here."""
        live.follow_published()
        return JSONResponse(live.state(), headers=NO_CACHE)

    @r.get("/ui/api/iterations")
    def iterations() -> dict[str, Any]:
        """Every iteration of the dataset, newest first, with the chosen and the published one."""
        its = list_iterations(live.need_runs(), live.images_dir)
        try:
            back = rollback_target(live.runs)
        except NotFound:
            back = None
        return {"iterations": [it.to_dict() for it in its], "live": live.state(), "rollback_to": back,
                "history": read_published(live.runs)["history"][-20:], "token_required": token_required}

    @r.post("/ui/api/iterations/select")
    def select(body: RunIn) -> dict[str, Any]:
        """Choose an iteration: every page shows it, Try and the maps answer with it."""
        return live.select(_name(live, body.run))

    @r.post("/ui/api/publish")
    def publish(body: RunIn) -> dict[str, Any]:
        """Publish an iteration: /predict, /score and /v2 answer with it from now on (no restart, no failed request)."""
        return live.publish(_name(live, body.run))

    @r.post("/ui/api/rollback")
    def rollback() -> dict[str, Any]:
        """Publish again the iteration published before the current one."""
        return live.rollback()

    @r.get("/ui/api/iterations/compare")
    def compare(before: str, after: str) -> dict[str, Any]:
        """``after`` against ``before``: per-class deltas and the test images fixed or broken, scored with the later
        labels; says when the two were not tested on the same images with the same labels."""
        runs = live.need_runs()
        a = check_iteration(runs, _name(live, before), need_model=False)
        b = check_iteration(runs, _name(live, after), need_model=False)
        out = compare_runs(a.root, b.root)
        if catalog is not None:  # thumbnails through the dataset's own addresses
            for key in ("fixed", "broken", "changed"):
                rels = catalog.match([(it["path"], it["image"]) for it in out[key]])
                for it, rel in zip(out[key], rels):
                    it["dataset_path"] = rel
                    del it["path"]
        else:
            for key in ("fixed", "broken", "changed"):
                for it in out[key]:
                    del it["path"]
        return out

    @r.get("/ui/api/download/bundle")
    def download_bundle(run: str = Query("", description="Iteration name (default: the published one, else the chosen one).")) -> Response:
        """The iteration's model bundle as a zip (bundle.json, manifest and every file it lists, as written)."""
        rd = check_iteration(live.need_runs(), _default(live, run))
        fd, tmp = tempfile.mkstemp(prefix="imgclf-bundle-", suffix=".zip")
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
                for p in sorted(rd.model.rglob("*")):
                    if p.is_file() and not p.is_symlink():
                        z.write(p, f"model/{p.relative_to(rd.model).as_posix()}")
        except BaseException:
            os.unlink(tmp)
            raise
        return FileResponse(tmp, media_type="application/zip", filename=f"{rd.root.name}-model.zip",
                            background=BackgroundTask(os.unlink, tmp), headers=NO_CACHE)

    @r.get("/ui/api/download/onnx")
    def download_onnx(run: str = "", file: str = "") -> Response:
        """An ONNX file of the iteration's bundle (its featurizer network; ``file`` picks one when there are several)."""
        rd = check_iteration(live.need_runs(), _default(live, run))
        files = sorted(p for p in rd.model.rglob("*.onnx") if p.is_file())
        if not files:
            raise NotFound(f"the bundle of {rd.root.name} holds no ONNX file", reason="no_onnx")
        chosen = [p for p in files if p.name == file] if file else files[:1]
        if not chosen:
            raise NotFound(f"no ONNX file {file!r} in the bundle of {rd.root.name}; one of "
                           f"{', '.join(p.name for p in files)}", reason="no_onnx")
        return FileResponse(chosen[0], media_type="application/octet-stream", filename=chosen[0].name, headers=NO_CACHE)

    @r.get("/ui/api/download/annotations")
    def download_annotations() -> Response:
        """The dataset's annotations.csv: every correction, with its history."""
        cat = _catalog(catalog)
        path = annotations_path(cat.root)
        if not path.exists():
            raise NotFound("the dataset has no annotations.csv yet: no image has been corrected", reason="no_annotations")
        return FileResponse(path, media_type="text/csv", filename=ANNOTATIONS_FILE, headers=NO_CACHE)

    @r.get("/ui/api/download/listing")
    def download_listing() -> Response:
        """Every image of the dataset with its current label (empty when left out), folder label and status, as CSV."""
        cat = _catalog(catalog)
        views = cat.views(cat.paths())
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["path", "label", "folder_label", "status"])
        for rel, v in views.items():
            w.writerow([csv_cell(x) for x in (rel, v["label"] or "", v["original"], v["status"])])
        name = f"{cat.root.name}-labels.csv"
        return Response(out.getvalue(), media_type="text/csv",
                        headers={**NO_CACHE, "Content-Disposition": f'attachment; filename="{name}"'})

    return r


def _default(live: Live, run: str) -> str:
    """``run``, else the published iteration, else the chosen one."""
    if run:
        return _name(live, run)
    state = live.state()
    name = state["published"] or state["chosen"]
    if not name:
        raise NotFound("no iteration is published or chosen; pick one on the Iterations page", reason="no_iteration")
    return name


def _catalog(catalog: Catalog | None) -> Catalog:
    if catalog is None:
        raise NotFound("no dataset is loaded; start the UI with `imgclf ui --images DIR`")
    return catalog
