"""The progress file: bars and stages reported as one JSON object, replaced whole, kept fresh by a heartbeat."""
from __future__ import annotations

import json
import time

import pytest

from imgclf.util import progress


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    yield path
    progress.reporter().stop()


def _read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _next_update(path, after: float, limit_s: float = 30.0) -> dict:
    """The file's object once its ``updated`` is later than ``after`` (the test fails when it never is)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if path.exists() and (d := _read(path))["updated"] > after:
            return d
        time.sleep(0.05)
    raise AssertionError(f"{path} was not rewritten")


@pytest.mark.slow
def test_a_bar_reports_its_counts_and_the_stage(progress_file):
    progress.report_stage("featurize")
    first = _read(progress_file)
    assert first["stage"] == "featurize" and first["done"] is None and first["task"] is None

    seen = []
    with progress.progress_bar(10, "featurize test", unit="img", show=False) as bar:
        for _ in range(5):
            bar.update(2)
            time.sleep(progress.MIN_INTERVAL_S + 0.1)  # pace the loop so that each update may be written
            seen.append(_next_update(progress_file, seen[-1]["updated"] if seen else first["updated"]))
    dones = [d["done"] for d in seen]
    assert dones == sorted(dones) and len(set(dones)) >= 3 and dones[-1] == 10
    last = seen[-1]
    assert (last["stage"], last["task"], last["total"], last["unit"]) == ("featurize", "featurize test", 10, "img")
    assert last["rate"] > 0 and last["eta_s"] == 0
    after = _read(progress_file)  # the closed bar is gone; the stage stays
    assert after["stage"] == "featurize" and after["done"] is None


def test_a_stage_without_a_bar_keeps_the_file_fresh(progress_file):
    progress.report_stage("train")
    first = _read(progress_file)
    beat = _next_update(progress_file, first["updated"])  # nothing but the heartbeat writes now
    assert beat["stage"] == "train" and beat["stage_started"] == first["stage_started"]


def test_a_new_stage_drops_a_bar_a_failed_step_left_open(progress_file):
    progress.report_stage("select")
    bar = progress.progress_bar(4, "featurize", show=False)
    bar.update()
    progress.report_stage("train")
    assert _read(progress_file)["task"] is None
    bar.close()  # closing it late changes nothing
    assert _read(progress_file)["stage"] == "train"


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.reporter() is None
    with progress.progress_bar(3, "quiet", show=False) as bar:
        bar.update(3)
    assert bar.done == 3
    progress.report_stage("prepare")
    assert list(tmp_path.iterdir()) == []
