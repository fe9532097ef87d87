"""imgclf never removes or overwrites a file it did not write: a folder of the user's files is refused as a run
directory, and the model folder swap keeps what its manifest does not list."""
from __future__ import annotations

import shutil

import pytest
from datagen import make_dataset, tiny_config
from cliutil import cli
from rundir_helpers import tiny_sets

from imgclf.bundle.folder import load_bundle, verify_bundle
from imgclf.pipeline.steps import evaluate, prepare, train
from imgclf.rundir.state import MADE_BY
from imgclf.util.errors import RunDirError
from imgclf.util.files import read_json


def _tree(d):
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


@pytest.fixture
def users_folder(tmp_path):
    u = tmp_path / "U"
    (u / "model").mkdir(parents=True)
    (u / "model" / "important.txt").write_text("my notes")
    (u / "report.html").write_text("<p>my report</p>")
    (u / "config.json").write_text('{"mine": true}')
    return u


@pytest.mark.parametrize("command", ["run", "demo"])
def test_run_and_demo_refuse_a_folder_of_the_users_files_and_leave_it_as_it_was(users_folder, tmp_path, command, capsys):
    before = _tree(users_folder)
    args = ["-q", "--images", make_dataset(tmp_path / "images", n_per_class=6)] if command == "run" else ["--n-per-class", "4"]
    proc = cli(capsys, command, *args, "--run-dir", users_folder, *tiny_sets(tmp_path / "data"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: {users_folder} holds files imgclf did not write (e.g. config.json, model, report.html)" in proc.stderr
    assert "hint: give another --run-dir" in proc.stderr
    assert _tree(users_folder) == before  # nothing written, overwritten or removed, not even a lock file
    assert not (tmp_path / "data" / "datasets").exists()  # the demo drew nothing


@pytest.mark.slow
def test_an_empty_folder_and_a_run_dir_of_an_older_release_are_accepted(trained_run, tmp_path):
    cfg = tiny_config(tmp_path / "data", make_dataset(tmp_path / "images", n_per_class=6))
    (tmp_path / "empty").mkdir()
    assert prepare(cfg, tmp_path / "empty")["images"] == 18
    assert read_json(tmp_path / "empty" / MADE_BY)["format"] == "imgclf-run-dir"

    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    for name in (MADE_BY, ".imgclf.lock"):
        (old / name).unlink()
    m = evaluate(tiny_config(tmp_path / "data", read_json(old / "config.json")["data"]["images"]), old)
    assert m.n_test > 0 and (old / MADE_BY).is_file()

    half = tmp_path / "half"  # split.csv alone is not a run directory
    half.mkdir()
    (half / "split.csv").write_text("path,rel,label,split\n")
    with pytest.raises(RunDirError, match="holds files imgclf did not write"):
        prepare(cfg, half)
    assert (half / "split.csv").read_text() == "path,rel,label,split\n"


@pytest.mark.slow
def test_retraining_keeps_the_users_files_in_the_model_folder(trained_run, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(trained_run, rd)
    (rd / "model" / "important.txt").write_text("my notes")
    (rd / "model" / "mine").mkdir()
    (rd / "model" / "mine" / "a.txt").write_text("a")
    (rd / "model" / "link.txt").symlink_to("important.txt")
    old_created = read_json(rd / "model" / "bundle.json")["created"]
    cfg = tiny_config(tmp_path / "data", read_json(rd / "config.json")["data"]["images"], "svm.c_values=[2.0]")
    train(cfg, rd)
    evaluate(cfg, rd)  # rewrites the bundle again, with its metrics
    assert (rd / "model" / "important.txt").read_text() == "my notes"
    assert (rd / "model" / "mine" / "a.txt").read_text() == "a"
    assert (rd / "model" / "link.txt").is_symlink() and (rd / "model" / "link.txt").read_text() == "my notes"
    assert load_bundle(rd / "model").meta.classifier["C"] == 2.0
    assert "important.txt" not in verify_bundle(rd / "model")  # carried beside the bundle, never part of it
    assert read_json(rd / "model" / "bundle.json")["created"] >= old_created
    assert not [p for p in rd.iterdir() if p.name.startswith(".model.")]  # no swap folder left behind


def _folder(d, files):
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_the_swap_carries_unlisted_files_and_refuses_to_replace_one_by_a_new_file_of_its_name(tmp_path):
    from imgclf.bundle.swap import swap_dir
    from imgclf.util.errors import BundleError

    target = _folder(tmp_path / "model", {"a.bin": "old", "manifest.json": '{"files": {"a.bin": "x"}}', "mine.txt": "keep"})
    swap_dir(_folder(tmp_path / ".model.new-1", {"b.bin": "new", "manifest.json": '{"files": {"b.bin": "y"}}'}),
             target, "manifest.json")
    assert {p.name: p.read_text() for p in target.iterdir()} == {
        "b.bin": "new", "manifest.json": '{"files": {"b.bin": "y"}}', "mine.txt": "keep"}

    new = _folder(tmp_path / ".model.new-2", {"mine.txt": "a bundle file of that name", "manifest.json": "{}"})
    with pytest.raises(BundleError, match=r"holds mine.txt, which is not part of its bundle.*nothing was replaced"):
        swap_dir(new, target, "manifest.json")
    assert (target / "mine.txt").read_text() == "keep" and (target / "b.bin").read_text() == "new"
