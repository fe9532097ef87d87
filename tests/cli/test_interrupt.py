"""Ctrl-C (SIGINT) on the real command line: a run or a refinement says ``interrupted`` and exits 130
(a refinement with the command that resumes it); ``serve`` stops cleanly even while its model loads."""
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from datagen import make_dataset
import web


def _start(*args, cwd):
    """``imgclf ARGS`` with SIGINT at its default even where the test runner ignores it (a background job)."""
    return subprocess.Popen([sys.executable, "-m", "imgclf", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path: Path, proc, limit_s: float = 300.0) -> None:
    until = time.monotonic() + limit_s
    while not path.exists():
        assert proc.poll() is None, f"imgclf ended before {path.name} appeared: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < until, f"{path} did not appear"
        time.sleep(0.05)


def _interrupt(proc):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _settings(tmp_path):
    return ["--set", f'data.root="{tmp_path / "data"}"', "--set", "tracking.enabled=false", "--quiet"]


@pytest.mark.slow
def test_sigint_during_run_says_interrupted_and_exits_130(tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=12, seed=3)
    run_dir = tmp_path / "run"
    proc = _start("run", "--images", str(images), "--run-dir", str(run_dir), *_settings(tmp_path), cwd=tmp_path)
    _wait_for(run_dir / "split.csv", proc)
    code, out, err = _interrupt(proc)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_sigint_during_refinement_names_the_resume_command(tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=8, seed=4)
    run_dir = tmp_path / "run"
    # the smallest network at 64 px, its head not probed first, one compute thread (a thread team burns CPU waiting
    # for a core the other tests hold): the first epoch's checkpoint comes soon
    small = ["--set", 'refine.backbone="efficientnet_lite0"', "--set", "refine.resolution=64", "--set", "refine.epochs=30",
             "--set", "refine.batch_size=8", "--set", 'refine.head_init="random"', "--set", "engine.threads=1"]
    proc = _start("refine", "--run-dir", str(run_dir), "--images", str(images), *small, *_settings(tmp_path), cwd=tmp_path)
    _wait_for(run_dir / "refine" / "checkpoint.json", proc)
    code, out, err = _interrupt(proc)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert lines[-2:][0] == "interrupted" and lines[-1].startswith(f"hint: imgclf refine --resume {run_dir}"), err
    assert (run_dir / "refine" / "checkpoint.json").exists()  # what the hint's command continues from
    assert "Traceback" not in err

    # `imgclf run` on that run directory says that it starts afresh and what would continue instead
    proc = _start("run", "--run-dir", str(run_dir), "--images", str(images), "--set", 'train.classifier="dnn"', *small,
                  *_settings(tmp_path), cwd=tmp_path)
    note = proc.stderr.readline()
    code, out, err = _interrupt(proc)
    assert note.startswith(f"note: {run_dir} holds the checkpoint of an interrupted refinement (after epoch ")
    assert f"`imgclf refine --resume {run_dir}` would continue it" in note
    assert code == 130


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("after_live_s", [0.3, 0.6])
def test_sigint_while_serve_loads_its_model_ends_cleanly(trained_run, tmp_path, after_live_s):
    """The engine compiles on a loader thread once the server listens; Ctrl-C in that window used
    to end the process with "terminate called without an active exception" (exit 134)."""
    port = _free_port()
    proc = _start("serve", str(trained_run / "model"), "--port", str(port), cwd=tmp_path)
    until = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < until, "the server did not start"
        try:
            web.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    time.sleep(after_live_s)
    code, out, err = _interrupt(proc)
    assert code == 0, err
    assert "terminate called" not in err and "Traceback" not in err
    serving = [line for line in err.splitlines() if f"on http://127.0.0.1:{port}" in line]
    assert serving and serving[0].startswith("serving ")  # imgclf.serve's INFO line, as the CLI's log handler prints it
