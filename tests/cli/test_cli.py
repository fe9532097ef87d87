"""The command line: every command has --help, user errors are one line plus a hint.

In-process through ``main`` (what the command line does is the same in the test's process); a real
process's streams are checked in test_usage_errors.py."""
import pytest
from cliutil import cli

from imgclf.cli import app, main

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)



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
def test_user_errors_are_one_line_and_a_hint(args, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: ") and len(lines) == 2
    for w in words:
        assert w in err


def test_config_prints_toml_that_loads_back(tmp_path, capsys):
    code, out, err = cli(capsys, "config", "--set", "model.resolution=320")
    assert code == 0
    f = tmp_path / "c.toml"
    f.write_text(out)
    from imgclf.config.settings import load_config

    assert load_config(f).model.resolution == 320


def test_backbones_lists_offline_ones(capsys):
    code, out, err = cli(capsys, "backbones")
    assert code == 0
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert name in out


@pytest.mark.slow
def test_step_commands_on_one_run_dir(tmp_path, capsys):
    from datagen import make_dataset, shared_engines

    images = make_dataset(tmp_path / "imgs", n_per_class=6, seed=5)
    shared_engines(tmp_path / "data")
    common = ["--set", f'data.root="{tmp_path / "data"}"', "--set", "tracking.enabled=false", "--set", "svm.cv_folds=2"]
    rd = str(tmp_path / "run")
    assert cli(capsys, "prepare", "--run-dir", rd, "--images", str(images), *common)[0] == 0
    for step in ("featurize", "train", "evaluate"):
        code, out, err = cli(capsys, step, "--run-dir", rd)  # the saved config carries the settings
        assert code == 0, err
    assert "test accuracy" in out and "report:" in out
    assert (tmp_path / "run" / "report.html").exists()
    assert (tmp_path / "data" / "features").is_dir()  # data.root came from the saved config
