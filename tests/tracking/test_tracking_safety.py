"""Tracking never costs a run: off means nothing written, a dead store means one warning line."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from tracking_helpers import track_config

from imgclf.api import run, track
from imgclf.cli import main
from imgclf.tracking.store import _HTTP_ENV, log_run, mlflow_quiet


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "not tracked" in line]


def test_tracking_off_writes_nothing(run_copy, tmp_path, monkeypatch, trained_run):
    env_db, root = tmp_path / "env.db", tmp_path / "data"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{env_db}")
    before = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*"))
    track(track_config(root, trained_run.parent / "images", "tracking.enabled=false"), run_copy, "run")
    assert not root.exists() and not env_db.exists()
    assert sorted(p.relative_to(run_copy) for p in run_copy.rglob("*")) == before


def test_the_untracked_session_run_left_no_store(trained_run):
    # trained_run went through the whole pipeline with tracking.enabled=false
    assert not (trained_run / "tracking.json").exists()
    assert not [p for p in trained_run.parent.rglob("*") if p.name in ("mlruns.db", "mlartifacts", "mlruns")]


def test_importing_tracking_or_tracking_off_does_not_import_mlflow(tmp_path):
    code = ("import sys, imgclf.tracking.store, imgclf.cli.runs\n"
            "from imgclf.config.settings import load_config\n"
            f"cfg = load_config(None, ['tracking.enabled=false', 'data.root={json.dumps(str(tmp_path))}'])\n"
            f"assert imgclf.tracking.store.log_run(cfg, {json.dumps(str(tmp_path))}, 'run') is None\n"
            "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_unreachable_server_warns_once_and_keeps_the_run(tracked, tmp_path, capsys):
    port = _closed_port()
    cfg = track_config(tracked.data_root, tracked.images, f'tracking.uri="http://127.0.0.1:{port}"')
    metrics = run(cfg, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] == metrics.accuracy
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "model" / "bundle.json").is_file()
    assert not (tmp_path / "run" / "tracking.json").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = _warnings(err)
    assert line.startswith("warning: ") and f"http://127.0.0.1:{port}" in line and str(tmp_path / "run") in line
    t0 = time.monotonic()  # MLflow's own defaults would retry for minutes
    assert log_run(cfg, tmp_path / "run", "evaluate") is None
    assert time.monotonic() - t0 < 10


@pytest.mark.slow
def test_a_server_that_never_answers_costs_seconds(run_copy, tracked, capsys, monkeypatch):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)  # the kernel completes the handshakes; nobody ever answers
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")  # a user's setting wins over ours
        cfg = track_config(tracked.data_root, tracked.images, f'tracking.uri="http://127.0.0.1:{srv.getsockname()[1]}"')
        t0 = time.monotonic()
        assert log_run(cfg, run_copy, "evaluate") is None
        assert time.monotonic() - t0 < 8
    assert len(_warnings(capsys.readouterr().err)) == 1


def test_http_defaults_are_short_and_restored(monkeypatch):
    for k in _HTTP_ENV:
        monkeypatch.delenv(k, raising=False)
    with mlflow_quiet():
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

        assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (0, 5)
    assert not any(k in os.environ for k in _HTTP_ENV)


@pytest.mark.slow
def test_cli_run_with_a_bad_tracking_uri_succeeds_with_one_warning(tracked, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuch://nowhere")
    rc = main(["run", "--quiet", "--images", str(tracked.images), "--run-dir", str(tmp_path / "run"),
               "--set", f"data.root={json.dumps(str(tracked.data_root))}", "--set", "svm.cv_folds=3"])
    out, err = capsys.readouterr()
    assert rc == 0 and "test accuracy" in out
    [line] = _warnings(err)
    assert "nosuch://nowhere" in line
    assert (tmp_path / "run" / "metrics.json").is_file()
