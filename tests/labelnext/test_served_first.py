"""Label next puts first the pool images a service kept after answering "unknown" or "uncertain", and says why."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from datagen import CLASSES, make_image, tiny_config

from imgclf.data.kept import KeptStore, read_kept
from imgclf.labelnext.step import suggest

POOL = 12


@pytest.fixture
def served_pool(trained_run: Path, tmp_path: Path) -> dict:
    """A copy of the shared run and of its images, with a pool of 12 images."""
    images = tmp_path / "images"
    shutil.copytree(trained_run.parent / "images", images)
    rng = np.random.default_rng(12)
    (images / "_unlabeled").mkdir()
    for i in range(POOL):
        make_image(CLASSES[i % 3], rng).save(images / "_unlabeled" / f"p{i:02d}.jpg", quality=90)
    shutil.copytree(trained_run, tmp_path / "run")
    return {"images": images, "run": tmp_path / "run",
            "cfg": tiny_config(trained_run.parent / "data", images, "doctor.enabled=false")}


@pytest.mark.slow
def test_unknown_then_uncertain_lead_the_batch_whatever_the_strategy_ranks(served_pool):
    cfg, run, pool = served_pool["cfg"], served_pool["run"], served_pool["images"] / "_unlabeled"
    plain = [Path(r["path"]).name for r in suggest(cfg, run, n=POOL, strategy="density")["rows"]]
    last, second_last, third_last = plain[-1], plain[-2], plain[-3]  # what density would ask for last

    store = KeptStore(pool, 10 * 2**20, served_pool["images"]).open()
    when = time.time()
    answers = {last: {"label": "uncertain", "score": 0.41, "nearest_label": CLASSES[0]},
               second_last: {"label": "unknown", "score": 0.9, "unknown": True, "ood_score": 7.5, "nearest_label": CLASSES[1]},
               third_last: {"label": CLASSES[2], "score": 0.97, "unknown": False}}  # a sure answer: nothing to put first
    kept = {}
    for name, answer in answers.items():  # as the service keeps them: the file moved into the keep folder's name
        data = (pool / name).read_bytes()
        (pool / name).unlink()
        kept[name] = store.add(data, answer, when).file
    again = (pool / plain[0]).read_bytes()  # asked twice: before an uncertain image asked once
    (pool / plain[0]).unlink()
    kept[plain[0]] = store.add(again, answers[last], when).file
    store.asked_again(read_kept_sha(store, kept[plain[0]]), when)
    store.close()
    assert len(read_kept(pool)) == 4

    out = suggest(cfg, run, n=5, strategy="density")
    rows = out["rows"]
    day = time.strftime("%Y-%m-%d", time.gmtime(when))
    assert [(Path(r["path"]).name, r["reason"]) for r in rows[:3]] == [
        (kept[second_last], f"the service answered unknown on {day}"),
        (kept[plain[0]], f"the service answered uncertain on {day} (asked 2 times)"),
        (kept[last], f"the service answered uncertain on {day}")]
    assert out["served_unsure_first"] == 3
    assert not any(r["reason"].startswith("the service") for r in rows[3:])  # the sure answer is ranked as usual
    assert len(rows) == 5 and len({r["rel"] for r in rows}) == 5


def read_kept_sha(store: KeptStore, file: str) -> str:
    return next(k.sha256 for k in store.images.values() if k.file == file)
