"""The kept-images folder: oldest evicted first but never a labelled one; what a killed writer left is cleaned up
or adopted on the next open."""
from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset
from PIL import Image

from imgclf.data.annotations import record
from imgclf.data.dataset import scan_dataset
from imgclf.data.kept import INDEX, LOCK, KeptStore, kept_name, read_kept
from imgclf.util.errors import DatasetError

ANSWER = {"label": "uncertain", "score": 0.4, "nearest_label": "circles"}


def picture(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_the_oldest_go_first_but_a_labelled_image_is_never_deleted(tmp_path: Path):
    images = make_dataset(tmp_path / "images", n_per_class=2)
    pool = images / "_unlabeled"
    data = [picture(i) for i in range(4)]
    store = KeptStore(pool, 10 * len(data[0]), images).open()
    kept = [store.add(d, ANSWER, time.time()) for d in data]
    assert store.evict() == []
    record(images, [(f"_unlabeled/{kept[0].file}", "", "label", "circles")])  # the oldest was labelled meanwhile
    store.quota_bytes = 2 * len(data[0]) + 10
    gone = store.evict()
    store.flush()
    assert gone == [kept[1].file]  # the oldest not labelled; the labelled one stays, out of the quota's count
    assert sorted(p.name for p in pool.iterdir() if p.name.startswith("kept-")) == sorted(k.file for k in (kept[0], kept[2], kept[3]))
    assert sorted(read_kept(pool)) == sorted([kept[2].file, kept[3].file])
    ds = scan_dataset(images, pool="_unlabeled")
    assert [it.label for it in ds.items if it.from_pool] == ["circles"]
    store.close()


def kept_one(pool: Path):
    """One image kept in ``pool`` by a store since closed."""
    store = KeptStore(pool, 2**20).open()
    k = store.add(picture(1), ANSWER, time.time())
    store.close()
    return k


def test_open_removes_temp_files_and_adopts_whole_files_without_a_record(tmp_path: Path):
    pool = tmp_path / "pool"
    first = kept_one(pool)
    sha, name = kept_name(picture(2))  # written just before a kill, its record not saved yet
    (pool / name).write_bytes(picture(2))
    (pool / f".{kept_name(picture(3))[1]}.x1y2.tmp").write_bytes(picture(3)[:100])  # a write cut short
    (pool / f".{INDEX}.a1b2.tmp").write_text("file,sha")
    forged = f"kept-{'0' * 64}.png"  # a name of ours whose content does not match: not ours to manage
    (pool / forged).write_bytes(picture(4))

    again = KeptStore(pool, 2**20).open()
    assert sorted(p.name for p in pool.iterdir()) == sorted([LOCK, INDEX, first.file, name, forged])
    assert [k.file for k in again.images.values()] == [first.file, name]
    assert again.images[sha].answer == "" and again.images[sha].sha256 == hashlib.sha256(picture(2)).hexdigest()
    assert again.images[first.sha256].answer == "uncertain"
    assert again.asked_again(first.sha256, time.time()) and again.images[first.sha256].times_asked == 2
    again.close()


def test_a_record_naming_another_file_is_never_followed(tmp_path: Path):
    pool = tmp_path / "pool"
    mine = kept_one(pool)
    victim = tmp_path / "victim.png"
    victim.write_bytes(picture(2))
    row = ",".join(["../victim.png", "0" * 64, str(len(picture(2))), "unknown", "0.5", "true", "", "", "2026-01-01T00:00:00Z",
                    "2026-01-01T00:00:00Z", "1"])
    with open(pool / INDEX, "a", encoding="utf-8") as f:
        f.write(row + "\n")
    assert list(read_kept(pool)) == [mine.file]
    KeptStore(pool, 1).open()  # a quota of one byte: everything it keeps goes, nothing else
    assert victim.read_bytes() == picture(2) and not (pool / mine.file).exists()


def test_one_writer_per_folder(tmp_path: Path):
    """A second server keeping into the same folder would overwrite the first one's record: it is refused."""
    first = KeptStore(tmp_path / "pool", 2**20).open()
    with pytest.raises(DatasetError, match="another process keeps images in") as e:
        KeptStore(tmp_path / "pool", 2**20).open()
    assert "serve.keep_dir" in e.value.hint
    first.close()
    KeptStore(tmp_path / "pool", 2**20).open().close()
    assert [p.name for p in (tmp_path / "pool").iterdir() if not p.name.startswith(".")] == []  # nothing visible made
