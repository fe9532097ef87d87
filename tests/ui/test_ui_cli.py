"""``imgclf ui``: options, refusals, and a real start on a free port."""
from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from netutil import free_port
from ui_helpers import make_dataset
import web

from imgclf.cli import main
from imgclf.config.settings import load_config
from imgclf.ui.server import ui_settings
from imgclf.util.errors import BundleError, DatasetError, ImgclfError


def test_help_names_the_options(capsys):
    assert main(["ui", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--images", "--run", "--host", "--port", "--token"):
        assert opt in out


def test_settings_check_the_folders(tmp_path, ui_run):
    cfg = load_config(None, [f"data.root={json.dumps(str(tmp_path / 'data'))}"])
    with pytest.raises(DatasetError) as e:
        ui_settings(cfg, tmp_path / "nope", None)
    assert "does not exist" in str(e.value) and e.value.hint
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="is a file; expected a folder with one subfolder per class"):
        ui_settings(cfg, tmp_path / "photo.jpg", None)  # as `imgclf run` answers it
    with pytest.raises(ImgclfError):
        ui_settings(cfg, None, None)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(BundleError, match="missing"):  # a run without a model: nothing to try
        ui_settings(cfg, tmp_path, tmp_path / "empty_run")
    s = ui_settings(cfg, None, ui_run["run"])
    assert s == {"images_dir": str(ui_run["images"].resolve()), "run_dir": str(ui_run["run"].resolve()),
                 "runs": str(ui_run["run"].resolve().parent), "thumbs_dir": str((tmp_path / "data" / "thumbs").resolve())}
    # without --run: the newest iteration of the dataset's runs folder (DATA_ROOT/runs/<dataset>), else none
    assert ui_settings(cfg, ui_run["images"], None)["run_dir"] is None
    runs = tmp_path / "data" / "runs" / ui_run["images"].name
    shutil.copytree(ui_run["run"], runs / "20261205-120000", symlinks=True)
    s = ui_settings(cfg, ui_run["images"], None)
    assert s["run_dir"] == str((runs / "20261205-120000").resolve()) and s["runs"] == str(runs.resolve())


def test_refuses_a_public_address_without_a_token(tmp_path, capsys):
    images = make_dataset(tmp_path / "images", n_per_class=2, size=32)
    assert main(["ui", "--images", str(images), "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err


@pytest.mark.slow
def test_ui_command_serves_the_pages_until_interrupted(tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=2, size=32)
    port = free_port()
    env = {**os.environ, "IMGCLF_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "ui", "--images", str(images), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                info = web.get(f"{url}/ui/api/info").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
                time.sleep(0.2)
        assert info["dataset"]["total"] == 6 and info["model"] is None
        r = web.get(f"{url}/ui/api/thumb", params={"path": "circles/circles_000.jpg"})
        assert r.status_code == 200
        assert list((tmp_path / "data" / "thumbs").rglob("*-256.jpg")), "thumbnails are cached under data.root"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"web UI: http://127.0.0.1:{port}/ui/dataset" in out
