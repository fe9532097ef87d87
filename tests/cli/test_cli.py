"""The command line: every command has --help, user errors are one line plus a hint."""
import subprocess
import sys

import pytest

from imgclf.cli import app, main

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def _imgclf(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_core_commands_are_registered():
    assert {"run", "prepare", "featurize", "train", "evaluate", "predict", "demo", "config", "backbones"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and len(out) > 100


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "--images", "/definitely/missing", "--set", "tracking.enabled=false"], ["does not exist", "hint:"]),
        (["config", "--set", "model.resolution=333"], ["multiple of 32"]),
        (["config", "--set", "svm.bogus=1"], ["svm.bogus"]),
        (["evaluate", "--run-dir", "/definitely/missing/run"], ["is missing", "imgclf train"]),
        (["predict", "/definitely/missing/model", "x.jpg"], ["not a model bundle"]),
    ],
)
def test_user_errors_are_one_line_and_a_hint(args, words, tmp_path):
    proc = _imgclf(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: ") and len(lines) == 2
    for w in words:
        assert w in proc.stderr


def test_config_prints_toml_that_loads_back(tmp_path):
    proc = _imgclf("config", "--set", "model.resolution=320")
    assert proc.returncode == 0
    f = tmp_path / "c.toml"
    f.write_text(proc.stdout)
    from imgclf.config.settings import load_config

    assert load_config(f).model.resolution == 320


def test_backbones_lists_offline_ones():
    proc = _imgclf("backbones")
    assert proc.returncode == 0
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert name in proc.stdout


@pytest.mark.slow
def test_step_commands_on_one_run_dir(tmp_path):
    from datagen import make_dataset, shared_engines

    images = make_dataset(tmp_path / "imgs", n_per_class=6, seed=5)
    shared_engines(tmp_path / "data")
    common = ["--set", f'data.root="{tmp_path / "data"}"', "--set", "tracking.enabled=false", "--set", "svm.cv_folds=2"]
    rd = str(tmp_path / "run")
    assert _imgclf("prepare", "--run-dir", rd, "--images", str(images), *common).returncode == 0
    for step in ("featurize", "train", "evaluate"):
        proc = _imgclf(step, "--run-dir", rd)  # the saved config carries the settings
        assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and "report:" in proc.stdout
    assert (tmp_path / "run" / "report.html").exists()
    assert (tmp_path / "data" / "features").is_dir()  # data.root came from the saved config
