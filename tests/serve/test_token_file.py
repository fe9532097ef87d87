"""A token kept out of `ps`: --token-file (and $IMGCLF_TOKEN) for serve, ui and call."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from netutil import free_port
from serve_helpers import jpeg
import web

from imgclf.cli.options import resolve_token
from imgclf.util.errors import ImgclfError

SECRET = "f1le-t0ken-9d2c"


def test_token_file_gives_the_first_line_and_refuses_ambiguity(tmp_path):
    f = tmp_path / "token"
    f.write_text(f"{SECRET}\nignored\n")
    assert resolve_token(None, f) == SECRET
    assert resolve_token("from-env", None) == "from-env"
    with pytest.raises(ImgclfError, match="both a token"):
        resolve_token("from-env", f)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ImgclfError, match="is empty"):
        resolve_token(None, tmp_path / "empty")
    with pytest.raises(ImgclfError, match="cannot read the token file"):
        resolve_token(None, tmp_path / "missing")


@pytest.mark.slow
def test_serve_with_a_token_file_keeps_the_token_out_of_the_process_list(bundle_dir, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "IMGCLF_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "serve", str(bundle_dir), "--port", str(port),
                             "--token-file", str(token_file)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if web.get(url + "/v2/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.3)
        assert SECRET not in " ".join(psutil.Process(proc.pid).cmdline())
        assert web.get(url + "/v2/models/imgclf", timeout=30).status_code == 401
        ok = web.get(url + "/v2/models/imgclf", headers={"Authorization": f"Bearer {SECRET}"}, timeout=30)
        assert ok.status_code == 200

        from imgclf.cli import main

        image = tmp_path / "x.jpg"
        image.write_bytes(jpeg(5))
        assert main(["call", url, str(image), "-n", "1", "--token-file", str(token_file)]) == 0
        assert "call 1:" in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
