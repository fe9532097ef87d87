"""serve and ui refuse what would fail before they announce an address; predict's exit status
tells whether every input was read. (In-process through ``main``: these are the commands' own checks.)"""
import json
import socket

import pytest
from cliutil import refused

from imgclf.cli import main


@pytest.fixture
def busy_port():
    """A port a socket listens on (whoever holds it, another bind of it fails)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_busy_port_is_refused_before_any_address(command, busy_port, trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = [str(trained_run / "model")] if command == "serve" else ["--run", str(trained_run)]
    assert refused([command, *target, "--port", str(busy_port)]) == 2
    out, err = capsys.readouterr()
    assert "http://" not in out + err and "Traceback" not in err
    error, hint = err.strip().splitlines()
    assert error.startswith(f"error: port {busy_port} is in use")
    assert hint.startswith("hint: --port ")
    suggested = int(hint.split()[2])
    with socket.socket() as s:  # the port the hint names can be bound
        s.bind(("127.0.0.1", suggested))


def test_ui_on_a_folder_without_a_model_announces_nothing(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert refused(["ui", "--run", str(trained_run / "model")]) == 2  # the bundle, not its run
    out, err = capsys.readouterr()
    assert "web UI" not in out and "http://" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")


def test_predict_exits_1_when_an_input_cannot_be_read(trained_run, tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    good = sorted(tiny_dataset.rglob("*.jpg"))[:2]
    missing = tmp_path / "missing.jpg"
    assert main(["predict", str(trained_run / "model"), str(good[0]), str(missing), str(good[1])]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(good[0]), str(missing), str(good[1])]
    assert "error" in rows[1] and all("label" in r for r in (rows[0], rows[2]))  # the others are still answered
    assert err.strip().splitlines()[-1].startswith("error: 1 of 3 inputs could not be read")


def test_predict_exits_0_when_every_input_is_read(trained_run, tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["predict", str(trained_run / "model"), str(sorted(tiny_dataset.rglob("*.jpg"))[0])])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "label" in json.loads(out)
