"""predict --ray is resumable: the driver killed with SIGKILL half way, then started again, leaves every image in
the output exactly once; a file changed since its row was written is predicted again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgclf.cli import main
from imgclf.inference.predict import expand_inputs

pytestmark = pytest.mark.slow  # a driver process connects to the session's Ray instance, twice


def _paths(out: Path) -> list[str]:
    return [json.loads(line)["path"] for line in out.read_text().splitlines()]


def test_a_driver_killed_half_way_then_rerun_writes_every_image_exactly_once(ray_address, trained_run, images_200, tmp_path, capsys):
    model, out = trained_run / "model", tmp_path / "preds.jsonl"
    listed = {os.path.abspath(p) for p in expand_inputs([images_200])}
    cmd = [sys.executable, "-m", "imgclf", "predict", str(model), str(images_200), "--ray-address", ray_address,
           "--out", str(out), "--actors", "1", "--set", "engine.threads=1"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while driver.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.stat().st_size and len(out.read_bytes().splitlines()) >= 32:
            break
        time.sleep(0.02)
    assert driver.poll() is None, f"the driver ended before it could be killed: {driver.stderr.read().decode()[-2000:]}"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    driver.stderr.close()
    before = _paths(out)
    assert 32 <= len(before) < 200 and len(set(before)) == len(before)

    # and a file written by the killed job changed since: predicted again, and still once; the others are skipped
    changed = next(p for p in before if "/hostile/" not in p)
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))
    assert main(["predict", str(model), str(images_200), "--ray", "--out", str(out)]) == 1  # the 8 hostile files
    assert f"predicted {200 - len(before) + 1} of 200 images, {len(before) - 1} written by an earlier job" in capsys.readouterr().out
    after = _paths(out)
    assert len(after) == 200 and set(after) == listed
    assert after[: len(before) - 1] == [p for p in before if p != changed]  # the earlier rows that stand, as they were
    row = json.loads(out.read_text().splitlines()[after.index(changed)])
    assert row["mtime_ns"] == os.stat(changed).st_mtime_ns and row["label"]  # the new row, of the file as it is now


def test_a_last_line_cut_short_by_a_kill_is_dropped_and_predicted_again(ray_address, trained_run, images_200, tmp_path, capsys):
    model, out = trained_run / "model", tmp_path / "preds.jsonl"
    folder = images_200 / "hostile"
    assert main(["predict", str(model), str(folder), "--ray", "--out", str(out), "--actors", "1"]) == 1
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # what a kill in the middle of a write leaves
    assert main(["predict", str(model), str(folder), "--ray", "--out", str(out), "--actors", "1"]) == 1
    assert "predicted 1 of 8 images, 7 written by an earlier job" in capsys.readouterr().out
    assert sorted(_paths(out)) == sorted(json.loads(line)["path"] for line in lines)


def test_an_out_file_that_is_not_predictions_is_refused_not_overwritten(trained_run, images_200, tmp_path, capsys):
    out = tmp_path / "notes.jsonl"
    out.write_text("my own notes\n")
    assert main(["predict", str(trained_run / "model"), str(images_200 / "hostile"), "--ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {out} exists and is not the predictions file of this bundle (line 1 is not a JSON row with a path)" in err
    assert "hint: give another --out, or delete the file to start over" in err and out.read_text() == "my own notes\n"


def test_parquet_parts_left_by_a_kill_are_taken_up_and_each_image_stays_once(ray_address, trained_run, images_200, tmp_path, capsys):
    import pyarrow.parquet as pq

    model, out = trained_run / "model", tmp_path / "preds.parquet"
    folder = images_200 / "hostile"
    assert main(["predict", str(model), str(folder), "--ray", "--out", str(out), "--actors", "1"]) == 1
    table = pq.read_table(out)
    parts = tmp_path / "preds.parquet.parts"
    parts.mkdir()
    pq.write_table(table.slice(0, 3), parts / "part-000000.parquet")  # a kill after the file was replaced, before its parts went
    out.unlink()
    pq.write_table(table.slice(2), tmp_path / "later.parquet")
    (tmp_path / "later.parquet").rename(out)  # and an earlier file that holds some of the same rows
    assert main(["predict", str(model), str(folder), "--ray", "--out", str(out), "--actors", "1"]) == 1
    assert "predicted 0 of 8 images, 8 written by an earlier job" in capsys.readouterr().out
    again = pq.read_table(out)
    assert sorted(again.column("path").to_pylist()) == sorted(table.column("path").to_pylist()) and not parts.exists()
