"""``imgclf serve RUNS`` serves the published iteration and follows publish and rollback without a restart."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest
from cliutil import refused
import web

from imgclf.rundir.iterations import publish, rollback


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run):
    """A runs folder with two iterations (copies of one real run; the second's folder name differs)."""
    folder = tmp_path_factory.mktemp("follow") / "runs"
    for name in ("20261205-100000", "20261205-110000"):
        shutil.copytree(trained_run, folder / name, symlinks=True)
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _iteration(url: str) -> str | None:
    r = web.get(url + "/v2/models/imgclf", timeout=10)
    return r.json()["parameters"].get("iteration") if r.status_code == 200 else None


@pytest.mark.slow
def test_serve_follows_the_published_iteration(runs, tmp_path, capsys):
    first, second = "20261205-100000", "20261205-110000"
    assert refused(["serve", str(runs)]) == 2
    assert "no published iteration" in capsys.readouterr().err
    publish(runs, first)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "serve", str(runs), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        def wait_for(name: str) -> None:
            until = time.monotonic() + 90
            while time.monotonic() < until:
                try:
                    if _iteration(url) == name:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            raise AssertionError(f"the server never answered with {name}")

        wait_for(first)
        publish(runs, second)
        wait_for(second)
        rollback(runs)
        wait_for(first)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
