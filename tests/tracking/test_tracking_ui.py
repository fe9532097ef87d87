"""The README's ``mlflow ui --backend-store-uri ...`` command shows the runs imgclf tracked."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from netutil import free_port
from tracking_helpers import run_id_of, track_config
import web

from imgclf.tracking.store import browse_hint, log_run


@pytest.mark.slow
def test_mlflow_ui_serves_the_tracked_runs_and_takes_new_ones(tracked, run_copy, tmp_path):
    # the server takes a new run below: it serves a copy of the store, so the one the other tests read keeps its
    # two runs (their artifacts are where the copy says, by absolute path)
    (tmp_path / "store").mkdir()
    db = Path(shutil.copy2(tracked.db, tmp_path / "store" / "mlruns.db"))
    uri = f"sqlite:///{db}"
    command = browse_hint(uri).split()
    assert command[:3] == ["mlflow", "ui", "--backend-store-uri"] and command[3] == uri
    port = free_port()
    exe = str(Path(sys.executable).parent / "mlflow")
    # without MLflow's job runner (its own server jobs, nothing of imgclf's): three fewer processes importing MLflow
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen([exe, *command[1:], "--port", str(port), "--workers", "1"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # the server imports a lot; 2 loaded cores are slow
        while True:
            assert proc.poll() is None, "mlflow ui exited"
            try:
                if web.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow ui did not come up"
            time.sleep(1)
        exps = web.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 10}, timeout=30).json()
        ids = [e["experiment_id"] for e in exps["experiments"] if e["name"] == "images"]
        runs = web.post(f"{base}/api/2.0/mlflow/runs/search", json={"experiment_ids": ids}, timeout=30).json()["runs"]
        assert {r["info"]["run_id"] for r in runs} == {run_id_of(d) for d in tracked.runs.values()}
        rd = tracked.runs["svm_a"]
        rid = run_id_of(rd)
        files = web.get(f"{base}/api/2.0/mlflow/artifacts/list", params={"run_id": rid}, timeout=30).json()["files"]
        assert {"roc.png", "model", "report.html"} <= {f["path"] for f in files}
        got = web.get(f"{base}/get-artifact", params={"path": "metrics.json", "run_uuid": rid}, timeout=30)
        assert got.status_code == 200 and got.content == (rd / "metrics.json").read_bytes()

        # The same server as a shared tracking server: artifacts go up through its proxy.
        cfg = track_config(tracked.data_root, tracked.images, f'tracking.uri="{base}"', 'tracking.experiment="shared"')
        rid = log_run(cfg, run_copy, "evaluate")
        assert rid is not None
        run = web.get(f"{base}/api/2.0/mlflow/runs/get", params={"run_id": rid}, timeout=30).json()["run"]
        accuracy = {m["key"]: m["value"] for m in run["data"]["metrics"]}["accuracy"]
        assert accuracy == pytest.approx(json.loads((run_copy / "metrics.json").read_text())["accuracy"])
        files = web.get(f"{base}/api/2.0/mlflow/artifacts/list", params={"run_id": rid, "path": "model"}, timeout=30).json()
        assert "model/bundle.json" in {f["path"] for f in files["files"]}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
