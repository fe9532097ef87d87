"""docs/configuration.md is written from the declarations; this fails when the two drift apart."""
from __future__ import annotations

from pathlib import Path

from imgclf.cli import main
from imgclf.config import reference
from imgclf.config.settings import RENAMED, all_keys

ROOT = Path(__file__).resolve().parents[2]


def test_the_reference_file_is_what_the_declarations_write():
    on_disk = (ROOT / reference.DOC_PATH).read_text(encoding="utf-8")
    assert on_disk == reference.markdown(), "regenerate it: imgclf config --explain --markdown > docs/configuration.md"


def test_the_reference_names_every_key_and_every_renamed_one(capsys):
    assert main(["config", "--explain", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert text == reference.markdown()
    for key in all_keys():
        assert f"| `{key}` |" in text
    for old, new in RENAMED.items():
        assert f"| `{old}` | `{new}` |" in text


def test_the_readme_links_the_reference():
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_requires_python_is_what_the_code_needs():
    """The code reads TOML with tomllib (Python 3.11): an older Python must not install it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
