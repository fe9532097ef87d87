"""One error path for the whole command line: usage mistakes, --version and bare ``imgclf`` answer in at
most three lines on stderr, never a traceback, whatever typer (and its click) is installed.

The mistakes are made in-process (``main``); a real process checks what its own streams carry: a usage
mistake, a mistake ``imgclf run`` finds, bare ``imgclf`` and --version; and that a wrong images folder is
answered before the imports of a whole run (scikit-learn, torch, MLflow, OpenVINO: seconds)."""
import subprocess
import sys

import pytest
from cliutil import cli

import imgclf
from imgclf.cli import app
from imgclf.cli.errors import click_exceptions


def _imgclf(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, timeout=300, cwd=cwd)



def _short(out, err):
    """stderr's lines, after checking what every answer to a mistake shares."""
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3, err
    return lines


MISTAKES = [
    (["run", "--imagez", "x"], "error: imgclf run has no option --imagez", "hint: did you mean --images?"),
    (["ui", "--imags", "x"], "error: imgclf ui has no option --imags", "hint: did you mean --images?"),
    (["nosuch"], "error: imgclf has no command 'nosuch'", "hint: the commands are backbones, call, config"),
    (["rnu"], "error: imgclf has no command 'rnu'", "hint: did you mean run?"),
    (["runs", "lst"], "error: imgclf runs has no command 'lst'", "hint: did you mean list?"),
    (["--verison"], "error: imgclf has no option --verison", "hint: did you mean --version?"),
    (["run", "--images"], "error: imgclf run: option '--images' requires an argument", "hint: imgclf run --help"),
    (["predict"], "error: imgclf predict: missing argument", "hint: usage: imgclf predict [OPTIONS]"),
    (["call", "http://127.0.0.1:9", "x.jpg", "-n", "many"], "error: imgclf call: invalid value for '-n'", "hint: usage: imgclf call"),
]


@pytest.mark.parametrize("args, error, hint", MISTAKES)
def test_usage_mistakes_are_an_error_and_a_hint(args, error, hint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2
    lines = _short(out, err)
    assert len(lines) == 2
    assert lines[0].startswith(error) and lines[1].startswith(hint), err


def test_a_usage_mistake_is_the_same_two_lines_on_a_real_process_stderr(tmp_path):
    args, error, hint = MISTAKES[0]
    proc = _imgclf(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = _short(proc.stdout, proc.stderr)
    assert len(lines) == 2
    assert lines[0].startswith(error) and lines[1].startswith(hint), proc.stderr


def test_an_unknown_command_is_not_offered_a_far_match(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "zzzz")
    lines = _short(out, err)
    assert "did you mean" not in lines[1] and "run" in lines[1]


@pytest.mark.slow
def test_images_given_a_file_is_one_error(tmp_path):
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"not a folder")
    proc = _imgclf("run", "--images", str(f), "--set", "tracking.enabled=false", "--set", f'data.root="{tmp_path / "data"}"',
                   cwd=tmp_path)
    assert proc.returncode == 2
    lines = _short(proc.stdout, proc.stderr)
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: ")


HEAVY = ("sklearn", "torch", "timm", "mlflow", "openvino", "matplotlib")


@pytest.mark.parametrize("command", ["run", "prepare", "refine"])
def test_a_missing_images_folder_is_answered_before_the_heavy_imports(command, tmp_path):
    script = ("import sys; from imgclf.cli import main; code = main(sys.argv[1:]); "
              f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules)); sys.exit(code)")
    args = [command, "--images", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "run"),
            "--set", f'data.root="{tmp_path / "data"}"']
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2
    lines = _short("", proc.stderr)
    assert lines[0] == f"error: images folder {tmp_path / 'nowhere'} does not exist" and lines[1].startswith("hint: ")
    assert proc.stdout.strip() == "", f"imported before answering: {proc.stdout.strip()}"
    assert not (tmp_path / "run").exists()


def test_bare_imgclf_prints_a_short_usage(tmp_path):
    proc = _imgclf(cwd=tmp_path)
    assert proc.returncode == 2
    lines = _short(proc.stdout, proc.stderr)
    assert lines[0].startswith("usage: imgclf COMMAND")
    names = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert set(lines[1].removeprefix("commands: ").split(", ")) == names
    assert "imgclf demo" in lines[2] and "imgclf run --images DIR" in lines[2]


def test_version():
    proc = _imgclf("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == f"imgclf {imgclf.__version__}"


def test_a_group_without_its_command_shows_its_commands(capsys):
    code, out, err = cli(capsys, "runs")
    assert code == 2 and "Traceback" not in err
    for name in ("list", "show", "compare"):
        assert name in out + err


def test_the_click_that_typer_uses_is_the_one_caught():
    """The exceptions main() catches are those the installed typer raises (its own click copy or the
    click package), found through typer: a parse error of the real app is one of them."""
    clicks = click_exceptions()
    with pytest.raises(clicks.UsageError) as e:
        app(args=["run", "--imagez", "x"], prog_name="imgclf", standalone_mode=False)
    assert isinstance(e.value, clicks.NoSuchOption) and e.value.exit_code == 2
    assert issubclass(clicks.UsageError, clicks.ClickException)
