"""`imgclf demo` writing into a user's folder: it never overwrites a file
it did not create, and refuses a non-empty folder that it did not make."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import imgclf.data.demo as demo
from imgclf.data.demo import generate_demo
from imgclf.util.errors import ImgclfError


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_refuses_a_non_empty_folder_without_a_demo_manifest(tmp_path, capsys):
    user = tmp_path / "userds"
    (user / "striped").mkdir(parents=True)
    (user / "striped" / "striped_0000.jpg").write_bytes(b"my own photo")
    (user / "notes.txt").write_text("mine")
    before = _digests(user)
    with pytest.raises(ImgclfError, match="not empty and was not made by `imgclf demo`"):
        generate_demo(user, n_per_class=3)
    assert _digests(user) == before, "nothing written, nothing changed"

    from imgclf.cli import main

    assert main(["demo", "--set", f"data.images={user}", "--n-per-class", "3"]) == 2
    assert "not made by `imgclf demo`" in capsys.readouterr().err
    assert _digests(user) == before


def test_demo_never_overwrites_a_file_it_did_not_write(tmp_path):
    out = tmp_path / "demo"
    generate_demo(out, n_per_class=2, size=64)
    mine = out / "striped" / "striped_0003.jpg"  # where a bigger demo would write
    mine.write_bytes(b"a user's file that happens to have a demo name")
    edited = out / "dotted" / "dotted_0001.jpg"  # a demo file the user changed: no longer imgclf's
    edited.write_bytes(b"edited by hand")
    before = _digests(out)
    with pytest.raises(ImgclfError, match="were not written by it") as e:
        generate_demo(out, n_per_class=5, size=64, seed=1)
    assert "striped/striped_0003.jpg" in e.value.message or "dotted/dotted_0001.jpg" in e.value.message
    assert _digests(out) == before, "refused before writing a byte"


def test_demo_rewrites_only_its_own_files_and_leaves_the_others(tmp_path):
    out = tmp_path / "demo"
    generate_demo(out, n_per_class=3, size=64, seed=0)
    extra = out / "leopard" / "my_leopard.png"
    extra.write_bytes(b"user data beside the demo")
    first = _digests(out)
    generate_demo(out, n_per_class=3, size=64, seed=0)  # same settings: nothing redrawn
    assert _digests(out) == first
    generate_demo(out, n_per_class=3, size=64, seed=1)  # new seed: its own files redrawn
    second = _digests(out)
    assert second["leopard/my_leopard.png"] == first["leopard/my_leopard.png"]
    assert second["striped/striped_0000.jpg"] != first["striped/striped_0000.jpg"]
    manifest = demo._read_manifest(out / ".imgclf-demo.json")
    assert manifest["files"]["striped/striped_0000.jpg"] == second["striped/striped_0000.jpg"]
    assert "leopard/my_leopard.png" not in manifest["files"]


def test_demo_interrupted_mid_generation_resumes_in_its_own_folder(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    real = demo.write_bytes
    written = []

    def dying_write(path, data):
        if len(written) == 4:
            raise KeyboardInterrupt  # stands in for a kill: the claim is on disk, the folder half full
        written.append(path)
        real(path, data)

    monkeypatch.setattr(demo, "write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        generate_demo(out, n_per_class=3, size=64)
    monkeypatch.setattr(demo, "write_bytes", real)
    counts = generate_demo(out, n_per_class=3, size=64)  # not refused: the folder is the demo's
    assert counts == {"dotted": 3, "striped": 3, "leopard": 3}
    fresh = tmp_path / "fresh"
    generate_demo(fresh, n_per_class=3, size=64)
    assert _digests(out) == _digests(fresh), "the resumed folder equals an uninterrupted one"
