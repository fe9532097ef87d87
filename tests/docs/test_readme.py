"""README.md in step with the tool: the run-directory table against what a real run writes, predict's example
against predict's keys, every `imgclf ...` command line shown parsed by the real command line, the documented
CSV columns against the code. One tiny run (3 classes × 8 images, through the command line, in-process) serves the whole module."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest
import typer.main
from datagen import make_dataset, shared_engines

from imgclf.acquire.download import REPORT_COLUMNS
from imgclf.cli import app, main
from imgclf.config.settings import load_config
from imgclf.data.annotations import COLUMNS as ANNOTATION_COLUMNS
from imgclf.pipeline import steps
from imgclf.rundir.layout import RunDir

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = README.read_text(encoding="utf-8")


def _imgclf(*args: str) -> tuple[int, str, str]:
    """``imgclf ARGS`` through the real command line, in this process → (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``imgclf run`` as a user types it (tracking on, one unreadable file), then ``imgclf predict``; the data
    folder has the session's engines (what a run writes there is not the README table's)."""
    base = tmp_path_factory.mktemp("readme")
    images = make_dataset(base / "images", n_per_class=8, seed=2)
    (images / "circles" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("IMGCLF_DATA_DIR", str(shared_engines(base / "data")))
        code, out, err = _imgclf("run", "--images", str(images), "--run-dir", str(base / "run"), "-q",
                                 "--set", "svm.cv_folds=2", "--set", "svm.c_values=[0.1, 10.0]")
        assert code == 0, err
        p_code, predicted, p_err = _imgclf("predict", str(base / "run" / "model"), str(images / "squares" / "squares_000.jpg"))
        assert p_code == 0, p_err
    return {"run_dir": base / "run", "data": base / "data", "stdout": out, "predicted": json.loads(predicted)}


def _section(title: str) -> str:
    """The README's text from the heading that starts with ``title`` to the next heading of any level."""
    m = re.search(rf"^#+ {re.escape(title)}.*?$(.*?)(?=^#+ )", TEXT, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def _layout_names() -> set[str]:
    """Every file and folder name rundir/layout.py gives a run directory."""
    rd = RunDir(Path("RUN"))
    return {getattr(rd, name).name for name, v in vars(RunDir).items() if isinstance(v, property)}


def _run_table() -> set[str]:
    """The names in the first column of the run-directory table (under "Your own images")."""
    rows = [line for line in _section("Your own images").splitlines() if line.startswith("| `")]
    return {name.rstrip("/") for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_the_run_table_names_every_file_of_a_run_directory():
    assert _run_table() == _layout_names()


def test_every_file_a_run_writes_is_in_the_table(cli_run):
    written = {p.name for p in cli_run["run_dir"].iterdir()}
    assert {"hashes.npz", "leakage.csv", "oof_predictions.csv", "reliability.png", "coverage.png", "tracking.json"} <= written
    assert written <= _run_table(), f"not in README's table: {sorted(written - _run_table())}"


def test_run_prints_the_skipped_files_and_the_data_folder(cli_run):
    out = cli_run["stdout"].splitlines()
    assert f"skipped 1 file(s) that could not be used: see {cli_run['run_dir'] / 'skipped.csv'}" in out
    assert f"data folder: {cli_run['data']} ($IMGCLF_DATA_DIR)" in out


def test_the_predict_example_has_predicts_keys(cli_run):
    block = _section("Your own images").split("imgclf predict runs/pets/model", 1)[1]
    example = json.loads(next(line for line in block.splitlines() if line.startswith("{")))
    assert list(example) == list(cli_run["predicted"])
    assert set(example["scores"]) <= {"cats", "dogs"} and example["unknown"] is False


def test_the_step_by_step_list_has_every_step():
    block = _section("Your own images").split("Step by step", 1)[1].split("```")[1]
    shown = [shlex.split(line, comments=True)[1] for line in block.splitlines() if line.startswith("imgclf ")]
    assert shown == [name for name in steps.__all__ if name not in ("run", "default_run_dir", "refine", "suggest")]


def test_documented_csv_columns_match_the_code():
    assert f"`{','.join(ANNOTATION_COLUMNS)}`" in TEXT
    assert f"`download_report.csv` (`{','.join(REPORT_COLUMNS)}`)" in TEXT


def _command_lines() -> list[str]:
    """Every ``imgclf ...`` command line of the README's bash blocks (continuations joined, an environment
    assignment before it dropped)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"^(\w+=\S+\s+)+", "", line.strip())
            if line.startswith("imgclf "):
                lines.append(line)
    return lines


def _mentions() -> list[str]:
    """Inline code of the prose that starts with ``imgclf ``: a command, maybe without its arguments."""
    return re.findall(r"`(imgclf [^`]+)`", re.sub(r"```.*?```", "", TEXT, flags=re.S))


def _args(line: str) -> list[str]:
    """A shown command as arguments: the comment and any redirection cut, ``[optional parts]`` kept, ``[...]`` dropped."""
    words = shlex.split(line, comments=True)[1:]
    words = words[: next((i for i, w in enumerate(words) if w in (">", "|", "&&")), len(words))]
    return [w.strip("[]") for w in words if w not in ("[...]", "...")]


def _parse(args: list[str]) -> tuple[list[str], dict]:
    """(command path, parameters) as the real command line parses ``args``, without running anything."""
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("imgclf", list(args))
    names = []
    while hasattr(cmd, "resolve_command"):
        name, cmd, rest = cmd.resolve_command(ctx, [*getattr(ctx, "_protected_args", []), *ctx.args])
        names.append(name)
        ctx = cmd.make_context(name, rest, parent=ctx)
    return names, ctx.params


def test_the_readme_shows_commands():
    shown = {shlex.split(line, comments=True)[1] for line in _command_lines()}
    assert {"run", "predict", "prepare", "doctor", "serve", "ui", "explain", "runs", "refine", "suggest"} <= shown


@pytest.mark.parametrize("line", _command_lines())
def test_every_command_shown_parses(line):
    names, params = _parse(_args(line))
    assert names
    load_config(None, list(params.get("set") or ()))  # every --set key exists and its value fits


@pytest.mark.parametrize("mention", sorted(set(_mentions())))
def test_every_command_mentioned_exists_with_its_options(mention):
    try:
        _parse(_args(mention))
    except Exception as e:  # the options are parsed before the arguments a bare mention leaves out;
        if type(e).__name__ not in ("MissingParameter", "Exit"):  # --version and --help end the parse by design
            raise


def test_every_link_inside_the_readme_has_its_heading():
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", TEXT, re.M)}
    assert sorted(set(re.findall(r"\]\(#([^)]+)\)", TEXT)) - slugs) == []


def test_a_renamed_option_or_command_would_fail():
    with pytest.raises(Exception, match="--imagez"):
        _parse(_args("imgclf run --imagez my_images"))
    with pytest.raises(Exception, match="nosuch"):
        _parse(_args("imgclf nosuch --run-dir R"))
    with pytest.raises(Exception, match="svm.bogus"):
        load_config(None, ["svm.bogus=1"])
