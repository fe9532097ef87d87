"""The API that adds images and classes to the dataset from the browser (the Dataset and Try pages).

- ``POST /ui/api/intake/upload``: multipart form: ``files`` (one part per file), ``label`` (a class;
  empty = the pool), ``create`` (make ``label`` a new class), ``force`` (add duplicates too),
  ``batch`` (join an earlier upload's batch: a large upload sent in several requests is undone as one);
- ``POST /ui/api/intake/add``: the body is one image (the Try page sends again the image it just
  classified); query ``label`` (empty = the pool), ``name``, ``force``;
- ``POST /ui/api/intake/undo``: ``{"batch": id}`` takes that upload back (the files move to
  ``DATASET/.imgclf-removed/``), whatever was corrected since;
- ``POST /ui/api/classes/rename`` ``{"old", "new"}`` and ``/ui/api/classes/merge`` ``{"sources", "into"}``:
  relabel a class's images (one batch of annotations; the page's undo takes it back).

Each file's outcome (added, refused with the decoder's reason, duplicate of which image) is in the
answer; a refused file never fails the request. The service's body limit covers every request.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from ..data.annotations import Annotation
from ..data.intake import Intake, Upload, merge_classes, rename_class
from ..util.errors import InvalidRequest
from .catalog import Catalog, _refused_when_unsaved
from .parts import needed

MAX_FILES = 1000  # files one upload request may hold (the multipart parser's own limit)
_TRUE = ("1", "true", "on", "yes")


class RenameIn(BaseModel):
    old: str  # the class renamed
    new: str  # its new name (no class has it yet)


class MergeIn(BaseModel):
    sources: list[str]  # the classes merged
    into: str  # the class they become (an existing one or a new name)


class UndoUploadIn(BaseModel):
    batch: str  # the id the upload answered


def build_intake_router(catalog: Catalog | None) -> APIRouter:
    """The routes that add images and classes to ``catalog``'s dataset (each answers 404 when there is none)."""
    r = APIRouter()
    need_catalog = needed(catalog, "no dataset is loaded: nothing can be added; start the UI with `imgclf ui --images DIR`",
                          reason="no_dataset")
    need_intake = needed(Intake(catalog.root, pool=catalog.pool) if catalog is not None else None,
                         "no dataset is loaded", reason="no_dataset")

    def answer(up: Upload) -> dict[str, Any]:
        cat = need_catalog()
        cat.entries(refresh=True)
        return {"batch": up.batch, "label": up.label, "added": up.count("added"), "labelled": up.count("labelled"),
                "refused": up.count("refused"), "duplicates": up.count("duplicate"),
                "items": [o.__dict__ for o in up.outcomes], "summary": cat.summary()}

    def add(files: list[tuple[str, bytes]], label: str, create: bool, force: bool, batch: str) -> dict[str, Any]:
        with _refused_when_unsaved():
            up = need_intake().add(files, label=label, create=create, force=force, batch=batch)
        return answer(up)

    @r.post("/ui/api/intake/upload")
    async def upload(request: Request) -> dict[str, Any]:
        """Add the files of a multipart form to a class, a new class or the pool; each file's outcome."""
        need_catalog()
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise InvalidRequest("send the files as multipart/form-data, one part named files per file",
                                 reason="not_multipart")
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:
            parts = form.getlist("files")
            if not parts:
                raise InvalidRequest("no files: send one part named files per image", reason="empty")
            if not all(isinstance(p, UploadFile) for p in parts):
                raise InvalidRequest("every part named files must be a file", reason="not_a_file")
            files = [(p.filename or "image", await p.read()) for p in parts]
            fields = {k: form.get(k) for k in ("label", "create", "force", "batch")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            raise InvalidRequest("label, create, force and batch must be text fields, not files")
        text = {k: (v or "") for k, v in fields.items()}
        return await run_in_threadpool(add, files, text["label"], text["create"].lower() in _TRUE,
                                       text["force"].lower() in _TRUE, text["batch"])

    @r.post("/ui/api/intake/add")
    async def add_one(request: Request, label: str = "", name: str = Query("image", max_length=255),
                      force: bool = False) -> dict[str, Any]:
        """Add the image sent as the request body (the Try page's last image) to class ``label`` or the pool."""
        need_catalog()
        data = await request.body()
        if not data:
            raise InvalidRequest("no image: send the image file as the request body", reason="empty")
        return await run_in_threadpool(add, [(name, data)], label, False, force, "")

    @r.post("/ui/api/intake/undo")
    def undo_upload(body: UndoUploadIn) -> dict[str, Any]:
        """Take an upload back: its files leave the dataset (moved to .imgclf-removed/, never deleted)."""
        if not re.fullmatch(r"[0-9a-f]{12}", body.batch):
            raise InvalidRequest(f"batch must be the id an upload answered (12 hex digits); got {body.batch!r}")
        cat = need_catalog()
        return {**cat.undo(batch=body.batch), "summary": cat.summary()}

    def relabelled(change: Callable[[Catalog], list[Annotation]]) -> dict[str, Any]:
        cat = need_catalog()
        with _refused_when_unsaved():
            rows = change(cat)
        return {"changed": len(rows), "paths": [a.path for a in rows], "summary": cat.summary()}

    @r.post("/ui/api/classes/rename")
    def rename(body: RenameIn) -> dict[str, Any]:
        """Rename a class: its images are relabelled (no file moves); undone by the page's undo."""
        return relabelled(lambda cat: rename_class(cat.root, body.old, body.new, pool=cat.pool))

    @r.post("/ui/api/classes/merge")
    def merge(body: MergeIn) -> dict[str, Any]:
        """Merge classes into one: their images are relabelled (no file moves); undone by the page's undo."""
        return relabelled(lambda cat: merge_classes(cat.root, body.sources, body.into, pool=cat.pool))

    return r
