"""Training from the UI: `imgclf run` as a job of its own process, its progress, one job per dataset, the
settings checked first, Cancel, and a job killed from outside (the UI's server keeps answering)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from datagen import make_dataset
from train_helpers import ended, marked_incomplete, train_app, wait_job
from ui_helpers import no_500_client

from imgclf.serve.server import ServerThread

STAGES = ("prepare", "select", "featurize", "train", "refine", "evaluate", "doctor")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("train_api")
    images = make_dataset(base / "shapes", n_per_class=30, seed=3)
    with ServerThread(train_app(images, base / "data")) as srv, no_500_client(srv.url) as client:
        yield {"base": base, "images": images, "data": base / "data", "client": client, "url": srv.url}


@pytest.fixture(scope="module")
def finished(site):
    """One real fast training started through the API and followed to its end; what was seen on the way."""
    c = site["client"]
    started = c.post("/ui/api/train/start", json={"preset": "fast", "settings": ["featurize.batch_size=4"]})
    second = c.post("/ui/api/train/start", json={"preset": "fast"})  # while the first one runs
    seen: list[dict] = []
    last = wait_job(c, ended, seen=seen)
    return {"started": started, "second": second, "seen": seen, "job": last["job"]}


def test_a_job_runs_what_imgclf_run_runs_and_finishes_a_whole_run(site, finished):
    assert finished["started"].status_code == 202
    job = finished["job"]
    assert (job["state"], job["exit_code"], job["message"]) == ("finished", 0, "")
    assert job["command"][1:5] == ["-m", "imgclf", "run", "--images"] and "--preset" in job["command"]
    run = Path(job["run_dir"])
    assert run.parent == site["data"].resolve() / "runs" / "shapes"  # where `imgclf run` puts a run without --run-dir
    assert not (run / "INCOMPLETE").exists() and (run / "metrics.json").is_file() and (run / "model" / "bundle.json").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["featurize"]["batch_size"] == 4  # the page's setting
    assert config["svm"]["cv_folds"] == 3 and config["data"]["root"] == str(site["data"].resolve())  # the UI's own
    assert config["train"]["preset"] == "fast"
    assert json.loads((run / "metrics.json").read_text())["n_test"] > 0
    log = site["client"].get("/ui/api/train/log").json()
    assert "test accuracy" in log["text"] and log["size"] > 0


def test_the_progress_file_is_updated_while_the_job_runs(finished):
    progress = [a["progress"] for a in finished["seen"] if a["job"]["state"] == "running" and a["progress"]]
    stages = [p["stage"] for p in progress]
    order = [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]]
    assert {"featurize", "train", "evaluate"} <= set(order)
    assert [STAGES.index(s) for s in order] == sorted(STAGES.index(s) for s in order)
    images = 90
    counts = [(p["done"], p["total"], p["unit"]) for p in progress if p["stage"] == "featurize" and p["task"] == "featurize"]
    dones = [d for d, _, _ in counts]
    # how many bar updates a poller sees depends on the machine's speed; that they count up to the whole does not
    assert counts, "the featurize bar was never seen"
    assert dones == sorted(dones) and all(0 <= d <= t == images and u == "img" for d, t, u in counts)
    updated = [p["updated"] for p in progress]
    assert updated == sorted(updated) and len(set(updated)) >= 5


def test_a_second_start_while_one_runs_is_refused_naming_it(finished):
    second = finished["second"]
    assert second.status_code == 409
    body = second.json()
    assert body["reason"] == "job_running"
    assert finished["job"]["id"] in body["error"] and "started" in body["error"] and str(finished["job"]["pid"]) in body["error"]


@pytest.mark.parametrize("body, words", [
    ({"preset": "fast", "settings": ["svm.cv_folds=1"]}, "svm.cv_folds must be an integer >= 2; got 1"),
    ({"preset": "quick"}, "train.preset"),
    ({"preset": "fast", "time_limit_s": -5}, "train.time_limit_s"),
    ({"preset": "fast", "settings": ["just words"]}, "section.key=value"),
    ({"preset": "fast", "settings": ["data.images=\"/elsewhere\""]}, "data.images cannot be set here"),
])
def test_an_invalid_setting_is_refused_before_anything_starts(site, finished, body, words):
    runs = site["data"] / "runs" / "shapes"
    before = sorted(p.name for p in runs.iterdir())
    r = site["client"].post("/ui/api/train/start", json=body)
    assert r.status_code == 400 and r.json()["reason"] == "invalid_setting"
    assert words in r.json()["error"]
    assert sorted(p.name for p in runs.iterdir()) == before
    assert site["client"].get("/ui/api/train/job").json()["job"]["id"] == finished["job"]["id"]


@pytest.mark.slow
def test_cancel_from_a_restarted_ui_stops_the_job_and_leaves_its_run_incomplete(site, finished):
    c = site["client"]
    assert c.post("/ui/api/train/start", json={"preset": "fast"}).status_code == 202
    job = wait_job(c, marked_incomplete)["job"]
    os.kill(job["pid"], signal.SIGSTOP)  # held running: a fast job on an idle machine could finish before the cancel
    with ServerThread(train_app(site["images"], site["data"])) as again, no_500_client(again.url) as c2:
        seen = c2.get("/ui/api/train/job").json()["job"]  # a UI started again finds the job from its record
        assert (seen["id"], seen["state"], seen["pid"]) == (job["id"], "running", job["pid"])
        refused = c2.post("/ui/api/train/start", json={"preset": "fast"})
        assert refused.status_code == 409 and job["id"] in refused.json()["error"]
        assert c2.post("/ui/api/train/cancel", data={"id": job["id"]}).status_code == 422  # a form another site could post
        out = c2.post("/ui/api/train/cancel", json={"id": job["id"]}).json()["job"]
    assert out["state"] == "cancelled" and out["cancel_requested"]
    assert not _running(job["pid"])
    assert (Path(job["run_dir"]) / "INCOMPLETE").is_file()  # never looks finished
    assert wait_job(c, ended)["job"]["state"] == "cancelled"  # the UI that started it agrees
    assert c.post("/ui/api/train/cancel", json={"id": job["id"]}).status_code == 404  # it runs no more


@pytest.mark.slow
def test_a_job_killed_from_outside_fails_and_the_ui_keeps_answering(site, finished):
    c = site["client"]
    assert c.post("/ui/api/train/start", json={"preset": "fast"}).status_code == 202
    job = wait_job(c, marked_incomplete)["job"]
    os.kill(job["pid"], signal.SIGKILL)  # what the kernel's out-of-memory killer does
    out = wait_job(c, ended)["job"]
    assert (out["state"], out["exit_code"]) == ("failed", -signal.SIGKILL)
    assert "SIGKILL" in out["message"]
    assert (Path(job["run_dir"]) / "INCOMPLETE").is_file()
    assert c.get("/ui/api/info").status_code == 200
    assert c.get("/ui/train").status_code == 200


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_a_run_that_fails_says_why_in_one_line(tmp_path):
    images = make_dataset(tmp_path / "lonely", n_per_class=6, classes=("circles",))  # one class: nothing to tell apart
    with ServerThread(train_app(images, tmp_path / "data")) as srv, no_500_client(srv.url) as c:
        assert c.post("/ui/api/train/start", json={"preset": "fast"}).status_code == 202
        job = wait_job(c, ended)["job"]
        log = c.get("/ui/api/train/log").json()["text"]
    assert (job["state"], job["exit_code"]) == ("failed", 2)
    error = next(ln for ln in log.splitlines() if ln.startswith("error:"))
    assert job["message"].startswith("exit code 2: error:") and error in job["message"]
    assert not (Path(job["run_dir"]) / "metrics.json").exists()
