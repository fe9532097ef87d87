"""Readers of a run (the service's health and model metadata, the UI's run info, suggest) say when it is incomplete,
reading the marker anew on each request, and never take the run directory's lock."""
from __future__ import annotations

import shutil

import pytest
from datagen import tiny_config
import web

from imgclf.config.settings import ServeConfig
from imgclf.inference.predict import Predictor
from imgclf.pipeline.steps import suggest
from imgclf.rundir.lock import locked
from imgclf.rundir.state import begin, finish
from imgclf.serve.server import ServerThread
from imgclf.ui import create_ui_app
from imgclf.util.files import read_json


@pytest.mark.slow
def test_health_metadata_and_ui_info_say_the_run_is_incomplete_until_it_is_whole(trained_run, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(trained_run, rd)
    images = read_json(rd / "config.json")["data"]["images"]
    app = create_ui_app(Predictor(rd / "model"), ServeConfig(), images_dir=images, run_dir=str(rd),
                        thumbs_dir=str(tmp_path / "thumbs"))
    with ServerThread(app, ServeConfig()) as srv, web.client(base_url=srv.url, timeout=60) as client:
        def seen() -> list:
            return [client.get("/v2/health/ready").json().get("run_incomplete"),
                    client.get("/v2/models/imgclf").json()["parameters"].get("run_incomplete"),
                    client.get("/ui/api/info").json().get("run_incomplete")]

        assert seen() == [None, None, None]
        with locked(rd, "train"):  # a train that the service sees while it runs, then killed (it never finishes)
            marker = begin(rd, "train")
            assert client.get("/v2/health/ready").status_code == 200  # readers do not wait for the lock
            assert all(s["command"] == "train" and "`imgclf train`" in s["message"] for s in seen())
        health, metadata, info = seen()
        assert health == metadata == info
        assert info["next"] == "train" and info["message"].startswith(f"run {rd} is incomplete: `imgclf train` started at ")
        assert info["hint"] == f"rerun it: `imgclf run --run-dir {rd}`, or `imgclf train --run-dir {rd}` and the steps after it"
        finish(rd, begin(rd, "train"))  # the rerun
        assert seen()[2]["message"].endswith("and its metrics do not match that yet")
        finish(rd, begin(rd, "evaluate"))
        assert marker.command == "train" and seen() == [None, None, None]


def test_suggest_says_when_it_ranks_with_the_model_of_an_incomplete_run(trained_run, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(trained_run, rd)
    images = shutil.copytree(read_json(rd / "config.json")["data"]["images"], tmp_path / "images")
    (images / "_unlabeled").mkdir()
    for i, p in enumerate(sorted(images.rglob("*.jpg"))[::8]):
        shutil.copy(p, images / "_unlabeled" / f"{i}.jpg")
    cfg = tiny_config(tmp_path / "data", images)
    assert suggest(cfg, rd, n=2)["run_incomplete"] is None
    begin(rd, "train")  # and killed
    s = suggest(cfg, rd, n=2)
    assert s["run_incomplete"]["command"] == "train"


@pytest.mark.slow
def test_runs_list_and_show_warn_of_a_tracked_run_that_is_incomplete_now(trained_run, tmp_path, capsys, monkeypatch):
    from imgclf.api import run
    from imgclf.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlruns.db'}"
    rd = tmp_path / "run"
    cfg = tiny_config(trained_run.parent / "data", trained_run.parent / "images", "tracking.enabled=true",
                      f'tracking.uri="{uri}"')
    run(cfg, rd, progress=False)
    store = ["--set", f'tracking.uri="{uri}"']
    assert main(["runs", "list", *store]) == 0 and "warning" not in capsys.readouterr().out
    begin(rd, "train")  # a retrain killed half way
    assert main(["runs", "list", *store]) == 0
    out = capsys.readouterr().out
    assert f": run {rd.resolve()} is incomplete: `imgclf train` started at " in out and "may not be its model's" in out
    assert main(["runs", "show", str(rd), *store]) == 0
    assert f"warning     run {rd.resolve()} is incomplete: `imgclf train`" in capsys.readouterr().out


@pytest.mark.slow
def test_serve_prints_a_warning_line_for_the_model_of_an_incomplete_run(trained_run, tmp_path):
    import socket
    import subprocess

    from rundir_helpers import start

    rd = tmp_path / "run"
    shutil.copytree(trained_run, rd)
    begin(rd, "run")  # and killed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start("serve", rd / "model", "--port", port)
    try:
        first = proc.stderr.readline()
        assert first.startswith(f"warning: run {rd} is incomplete: `imgclf run` started at ")
        assert proc.stderr.readline() == f"hint: rerun it: `imgclf run --run-dir {rd}`, or `imgclf prepare --run-dir {rd}` and the steps after it\n"
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
