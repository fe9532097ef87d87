"""serve and ui refuse what would fail before they announce an address; predict's exit status
tells whether every input was read."""
import json
import socket
import subprocess
import sys

import pytest


def _imgclf(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture
def busy_port():
    """A port another process's socket listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_busy_port_is_refused_before_any_address(command, busy_port, trained_run, tmp_path):
    target = [str(trained_run / "model")] if command == "serve" else ["--run", str(trained_run)]
    proc = _imgclf(command, *target, "--port", str(busy_port), cwd=tmp_path)
    assert proc.returncode == 2
    assert "http://" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    error, hint = proc.stderr.strip().splitlines()
    assert error.startswith(f"error: port {busy_port} is in use")
    assert hint.startswith("hint: --port ")
    suggested = int(hint.split()[2])
    with socket.socket() as s:  # the port the hint names can be bound
        s.bind(("127.0.0.1", suggested))


def test_ui_on_a_folder_without_a_model_announces_nothing(trained_run, tmp_path):
    proc = _imgclf("ui", "--run", str(trained_run / "model"), cwd=tmp_path)  # the bundle, not its run
    assert proc.returncode == 2
    assert "web UI" not in proc.stdout and "http://" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")


def test_predict_exits_1_when_an_input_cannot_be_read(trained_run, tiny_dataset, tmp_path):
    good = sorted(tiny_dataset.rglob("*.jpg"))[:2]
    missing = tmp_path / "missing.jpg"
    proc = _imgclf("predict", str(trained_run / "model"), str(good[0]), str(missing), str(good[1]), cwd=tmp_path)
    assert proc.returncode == 1
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(good[0]), str(missing), str(good[1])]
    assert "error" in rows[1] and all("label" in r for r in (rows[0], rows[2]))  # the others are still answered
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 of 3 inputs could not be read")


def test_predict_exits_0_when_every_input_is_read(trained_run, tiny_dataset, tmp_path):
    proc = _imgclf("predict", str(trained_run / "model"), str(sorted(tiny_dataset.rglob("*.jpg"))[0]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "label" in json.loads(proc.stdout)
