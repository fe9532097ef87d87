"""The feature cache after a kill -9: the temp file of an interrupted write is swept on the next start."""
from __future__ import annotations

import os
import time

import numpy as np

from imgclf.features.featurize import STALE_TMP_S, FeatureCache


def test_orphan_temp_file_of_a_killed_cache_write_is_removed_on_start(tmp_path):
    cache = FeatureCache(tmp_path, "lite0-224-fp32")
    digest = "cd" * 32
    cache.put(digest, np.arange(4, dtype=np.float32))
    folder = cache.dir / digest[:2]
    orphan = folder / f".{digest}.npy.k1ll3d.tmp"  # what atomic_path leaves when its process is SIGKILLed
    fresh = folder / f".{digest}.npy.wr1t1ng.tmp"  # another process's write in progress
    orphan.write_bytes(b"\x93NUMPY half")
    fresh.write_bytes(b"\x93NUMPY half")
    old = time.time() - STALE_TMP_S - 60
    os.utime(orphan, (old, old))

    FeatureCache(tmp_path, "lite0-224-fp32")

    assert not orphan.exists()
    assert fresh.exists(), "a young temp file may belong to a live writer"
    np.testing.assert_array_equal(cache.get(digest), np.arange(4, dtype=np.float32))


def test_cache_entry_that_is_not_a_feature_vector_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path, "lite0-224-fp32")
    digest = "ef" * 32
    cache.put(digest, np.ones(3, np.float32))
    path = cache.dir / digest[:2] / f"{digest}.npy"
    np.savez(path.with_suffix(".npz"), x=np.ones(3, np.float32))
    os.replace(path.with_suffix(".npz"), path)  # a zip archive where a .npy belongs
    assert cache.get(digest) is None
    with open(path, "wb") as f:
        np.save(f, np.ones((2, 3), np.float64))
    assert cache.get(digest) is None
