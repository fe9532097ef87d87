"""A full disk: one line with a hint, a non-zero exit, the run marked incomplete, the previous bundle still loads.

The run directory lives on a small tmpfs of its own (mounted for the test; skipped where mounting is not allowed)."""
from __future__ import annotations

import errno
import shutil
import subprocess

import pytest
from cliutil import cli

from imgclf.bundle.folder import load_bundle
from imgclf.rundir.state import read_incomplete
from imgclf.util.files import read_json

_RESERVE = 3 * 4096  # what is left free: room for the markers, not for a bundle


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk, leave: int) -> None:
    """Fill ``disk`` until ``leave`` bytes are free."""
    (disk / "reserve").write_bytes(b"\0" * leave)
    with open(disk / "filler", "wb", buffering=0) as f:
        for block in (b"\0" * (1 << 16), b"\0" * 4096):
            try:
                while f.write(block):
                    pass
            except OSError as e:
                assert e.errno == errno.ENOSPC
    (disk / "reserve").unlink()


@pytest.mark.slow
def test_train_on_a_full_disk_is_one_line_and_leaves_the_previous_bundle_loadable(trained_run, small_disk, capsys):
    rd = small_disk / "run"
    shutil.copytree(trained_run, rd)
    manifest = (rd / "model" / "manifest.json").read_bytes()
    _fill(small_disk, _RESERVE)

    proc = cli(capsys, "train", "--run-dir", rd, "--set", "svm.c_values=[2.0]")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    error, hint = proc.stderr.strip().splitlines()
    assert error.startswith(f"error: no space left on the disk of {rd} while `imgclf train` wrote ")
    assert "the run is marked incomplete" in error
    assert hint == f"hint: free space on that disk (`df -h {rd}` shows how much is left), then rerun `imgclf train --run-dir {rd}`"
    marker = read_incomplete(rd)
    assert (marker.command, marker.next, marker.finished) == ("train", "train", None)
    assert (rd / "model" / "manifest.json").read_bytes() == manifest
    assert load_bundle(rd / "model").meta.classifier["C"] != 2.0  # the previous bundle, whole
    assert not [p.name for p in rd.iterdir() if p.name.startswith(".model.")]  # no half-written bundle left

    ev = cli(capsys, "evaluate", "--run-dir", rd)
    assert ev.returncode == 2 and "`imgclf train` started at" in ev.stderr and "did not finish" in ev.stderr

    (small_disk / "filler").unlink()
    assert cli(capsys, "train", "--run-dir", rd, "--set", "svm.c_values=[2.0]").returncode == 0
    ev = cli(capsys, "evaluate", "--run-dir", rd)
    assert ev.returncode == 0, ev.stderr
    assert read_incomplete(rd) is None and load_bundle(rd / "model").meta.classifier["C"] == 2.0
    assert read_json(rd / "metrics.json")["n_test"] > 0
