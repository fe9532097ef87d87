"""Helpers of the Train page's tests: a UI server that may train its dataset, and waiting for its job."""
from __future__ import annotations

import time
from pathlib import Path

JOB_LIMIT_S = 900  # a fast training of the tiny dataset on a shared 2-core machine stays well within


def train_app(images: Path, data: Path, *extra: str):
    """The UI app over ``images`` (no run loaded; its runs folder DATA/runs/<dataset>, as `imgclf ui --images` opens
    it) with a tiny config under ``data``: its Train page can start runs."""
    from datagen import tiny_config

    from imgclf.config.settings import ServeConfig
    from imgclf.ui import create_ui_app

    cfg = tiny_config(data, images, "engine.threads=1", *extra)
    return create_ui_app(None, ServeConfig(), images_dir=str(images), run_dir=None, thumbs_dir=str(data / "thumbs"), cfg=cfg,
                         runs=str(data.resolve() / "runs" / images.name))


def wait_job(client, until, limit_s: float = JOB_LIMIT_S, every_s: float = 0.1, seen: list | None = None) -> dict:
    """Poll GET /ui/api/train/job until ``until(answer)``; each answer is appended to ``seen``; the last is returned."""
    end = time.monotonic() + limit_s
    while True:
        answer = client.get("/ui/api/train/job").json()
        if seen is not None:
            seen.append(answer)
        if until(answer):
            return answer
        assert time.monotonic() < end, f"the job never got there: {answer}"
        time.sleep(every_s)


def ended(answer: dict) -> bool:
    return answer["job"] is not None and answer["job"]["state"] != "running"


def marked_incomplete(answer: dict) -> bool:
    """The running job's run directory carries its INCOMPLETE marker (the run's first step has begun)."""
    job = answer["job"]
    return job is not None and job["state"] == "running" and (Path(job["run_dir"]) / "INCOMPLETE").is_file()
