"""The data folder (run history, feature cache, datasets) is the same from any folder of a project."""
import json
from pathlib import Path

import pytest

from imgclf.config.settings import DATA_MARKERS, Config, find_data_root


def _nothing_above(folder: Path) -> None:
    """Skip where a folder above the test's own holds imgclf data (another checkout's data/ in /tmp): it would be found."""
    taken = [p / "data" for p in folder.parents if any((p / "data" / m).exists() for m in DATA_MARKERS)]
    if taken:
        pytest.skip(f"{taken[0]} holds imgclf data above the test's folder")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """``project/data/`` with a run history, and a folder deep inside the project."""
    monkeypatch.delenv("IMGCLF_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (tmp_path / "project" / "data" / "runs").mkdir(parents=True)
    (tmp_path / "project" / "photos" / "cats").mkdir(parents=True)
    return tmp_path / "project"


def test_every_folder_of_a_project_finds_its_data_folder(project, monkeypatch):
    for where in (project, project / "photos", project / "photos" / "cats"):
        monkeypatch.chdir(where)
        assert find_data_root() == (project / "data", "the nearest data/ folder upward with imgclf data")
        assert Config().data.root == str(project / "data")


@pytest.mark.parametrize("marker", ["runs", "features", "engines", "mlruns.db"])
def test_any_of_imgclfs_own_things_marks_a_data_folder(tmp_path, monkeypatch, marker):
    monkeypatch.delenv("IMGCLF_DATA_DIR", raising=False)
    (tmp_path / "p" / "data").mkdir(parents=True)
    (tmp_path / "p" / "data" / marker).touch()
    (tmp_path / "p" / "sub").mkdir()
    assert find_data_root(tmp_path / "p" / "sub")[0] == tmp_path / "p" / "data"


def test_a_data_folder_of_something_else_is_not_taken(tmp_path, monkeypatch):
    monkeypatch.delenv("IMGCLF_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    _nothing_above(tmp_path)
    (tmp_path / "p" / "data" / "raw").mkdir(parents=True)
    assert find_data_root(tmp_path / "p") == (tmp_path / "xdg" / "imgclf", "the per-user folder ($XDG_DATA_HOME/imgclf)")


def test_the_environment_variable_comes_first(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(project / "elsewhere"))
    assert find_data_root() == (project / "elsewhere", "$IMGCLF_DATA_DIR")


def test_without_a_project_the_per_user_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("IMGCLF_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _nothing_above(tmp_path)
    assert find_data_root(tmp_path)[0] == tmp_path / "home" / ".local" / "share" / "imgclf"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec: a relative path is invalid
    assert find_data_root(tmp_path)[0] == tmp_path / "home" / ".local" / "share" / "imgclf"


@pytest.mark.slow
def test_config_and_runs_list_state_the_data_folder(project, monkeypatch, capsys):
    from imgclf.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for cwd in (project, project / "photos" / "cats"):
        monkeypatch.chdir(cwd)
        assert main(["config"]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0] == f"# data folder: {project / 'data'} (the nearest data/ folder upward with imgclf data)"
        assert f"root = {json.dumps(str(project / 'data'))}" in out
    monkeypatch.chdir(project / "photos")
    assert main(["runs", "list"]) == 2
    err = capsys.readouterr().err
    assert f"no tracking store at {project / 'data' / 'mlruns.db'}" in err
    assert "the nearest data/ upward" in err
