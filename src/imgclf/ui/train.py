"""The Train page's API: start `imgclf run` on the UI's dataset as a background job, follow it, read its log, cancel it.

    GET  /ui/api/train/job      the newest job, its progress and the page's defaults (every page polls it)
    POST /ui/api/train/start    {preset, time_limit_s, settings: ["section.key=value", ...]} → 202 and the job;
                                400 with the validator's message when a setting is refused, 409 while one runs
    POST /ui/api/train/cancel   {id}: stop that job if it runs (gone within 5 s)
    GET  /ui/api/train/log      the end of the job's log (``max_bytes``)

The jobs themselves are :class:`imgclf.ui.jobs.JobManager`'s.
"""
from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..config.settings import Config
from ..util.errors import ConfigError, InvalidRequest
from .jobs import JobManager
from .parts import needed


class CancelIn(BaseModel):
    id: str  # the job to stop (its run's name): a Cancel never stops a job started since the page last looked


class StartIn(BaseModel):
    preset: str = "fast"  # fast | balanced | best
    time_limit_s: float = 0.0  # 0: no limit
    settings: list[str] = []  # section.key=value, the value in TOML syntax, as --set takes them


def build_train_router(cfg: Config | None, images_dir: str | os.PathLike | None,
                       runs: str | os.PathLike | None = None) -> APIRouter:
    """The Train page's routes for the dataset ``images_dir`` with the UI's settings ``cfg`` (either None: no
    training); runs go into ``runs``, the dataset's runs folder (default: where `imgclf run` puts them)."""
    r = APIRouter()
    jobs = JobManager(cfg, images_dir, runs) if cfg is not None and images_dir else None
    need_jobs = needed(jobs, "training needs a dataset and the UI's settings; start the UI with `imgclf ui --images DIR`",
                       reason="no_training")

    def state(manager: JobManager) -> dict[str, Any]:
        job = manager.current()
        return {"job": job.to_dict() if job else None, "progress": manager.progress(job) if job else None}

    @r.get("/ui/api/train/job")
    def current_job() -> dict[str, Any]:
        """The newest job (null when none ran) with its progress, and what the Train page starts from."""
        manager = need_jobs()
        train = manager.base.train
        return {**state(manager), "dataset": manager.images.name, "runs": str(manager.runs),
                "defaults": {"preset": train.preset, "time_limit_s": train.time_limit_s}}

    @r.post("/ui/api/train/start", status_code=202)
    def start(body: StartIn) -> JSONResponse:
        """Start a training job; its settings are checked before anything starts."""
        manager = need_jobs()
        try:
            manager.start(body.preset, body.time_limit_s, body.settings)
        except ConfigError as e:
            raise InvalidRequest(f"{e.message}" + (f" ({e.hint})" if e.hint else ""), reason="invalid_setting") from None
        return JSONResponse(state(manager), status_code=202)

    @r.post("/ui/api/train/cancel")
    def cancel(body: CancelIn) -> dict[str, Any]:
        """Stop the running job ``id``: SIGINT, then SIGKILL after a grace; its run stays marked incomplete."""
        manager = need_jobs()
        manager.cancel(body.id)
        return state(manager)

    @r.get("/ui/api/train/log")
    def log(max_bytes: int = Query(65536, ge=1, le=4 * 1024 * 1024)) -> dict[str, Any]:
        """The end of the newest job's log (its stdout and stderr)."""
        manager = need_jobs()
        job = manager.current()
        if job is None:
            return {"text": "", "size": 0, "truncated": False, "path": None}
        return manager.log_tail(job, max_bytes)

    return r
