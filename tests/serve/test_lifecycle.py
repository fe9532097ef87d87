"""A real ``python -m imgclf serve`` process: readiness, graceful SIGTERM; a tampered bundle refused before listening."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from cliutil import refused
from netutil import free_port
from serve_helpers import jpeg
import web

from imgclf.cli import main


def _serve(bundle, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "imgclf", "serve", str(bundle), "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _status(url: str) -> int | None:
    try:
        return web.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


@pytest.mark.slow
def test_ready_after_loading_then_graceful_sigterm(bundle_dir):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(bundle_dir, port, "--set", "serve.drain_s=3")
    try:
        seen: list[tuple[int | None, int | None]] = []
        until = time.monotonic() + 120
        while not seen or seen[-1][1] != 200:
            assert proc.poll() is None and time.monotonic() < until, "the server did not become ready"
            seen.append((_status(base + "/v2/health/live"), _status(base + "/v2/health/ready")))
            time.sleep(0.02)
        assert (200, 503) in seen  # up and alive, but not ready while the model loaded

        # A request in flight: headers and half of the body sent, the rest comes after SIGTERM.
        body = jpeg(3)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
        time.sleep(0.2)
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while _status(base + "/v2/health/ready") != 503:  # readiness flips first (once the signal is handled) ...
            assert time.monotonic() - t_term < 10, "ready did not turn 503 after SIGTERM"  # generous: a loaded 2-core CI
            time.sleep(0.02)
        assert _status(base + "/v2/health/live") == 200  # ... while the server still answers
        assert _status(base + "/v2/health/ready") == 503
        while _status(base + "/v2/health/live") is not None:  # after the drain it stops accepting
            assert time.monotonic() - t_term < 10, "the server kept accepting connections"
            time.sleep(0.05)
        assert proc.poll() is None  # but waits for the request in flight
        s.sendall(body[len(body) // 2:])
        response = b""
        while chunk := s.recv(65536):
            response += chunk
        s.close()
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), response[:300]
        assert json.loads(payload)["predictions"][0]["label"]
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tampered_bundle_refuses_to_start(bundle_dir, tmp_path, capsys):
    bad = tmp_path / "model"
    shutil.copytree(bundle_dir, bad)
    head = bad / "head.npz"
    data = bytearray(head.read_bytes())
    data[-10] ^= 0xFF
    head.write_bytes(bytes(data))
    port = free_port()
    assert refused(["serve", str(bad), "--port", str(port)]) == 2
    out = "".join(capsys.readouterr())
    assert "head.npz" in out and "error:" in out
    assert _status(f"http://127.0.0.1:{port}/v2/health/live") is None  # it never listened


def test_serve_and_call_have_help(capsys):
    for cmd, options in (("serve", ("--token", "--insecure", "--host", "--port")), ("call", ("-n", "--token"))):
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert all(o in out for o in options), out
