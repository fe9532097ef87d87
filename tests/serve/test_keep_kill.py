"""A server killed (SIGKILL) while it writes a kept image leaves no partial file in the pool: the dataset scan sees
only whole images, and the next start removes the writer's leftover temp files."""
from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from datagen import make_dataset
from netutil import free_port
from PIL import Image
import web

from imgclf.data.dataset import scan_dataset
from imgclf.data.images import decode_image
from imgclf.data.kept import KeptStore, read_kept

TEMP = re.compile(r"\.kept-.*\.tmp")


def big_png(i: int, side: int = 1600) -> bytes:
    """A large, barely compressed PNG (about 7.7 MB), different for every ``i``: slow to write."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    pixels[0, :8] = np.frombuffer(i.to_bytes(24, "little"), np.uint8).reshape(8, 3)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


@pytest.mark.slow
def test_kill_9_mid_write_leaves_only_whole_images(bundle_dir, tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=2, seed=4)
    pool = images / "_unlabeled"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "serve", str(bundle_dir), "--port", str(port),
                             "--set", "serve.keep_inputs=true", "--set", f'serve.keep_dir="{pool}"',
                             "--set", "serve.keep_rate_per_min=0", "--set", "serve.keep_quota_mb=100000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    try:
        until = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < until, "the server did not become ready"
            try:
                if web.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)

        def send(i: int) -> None:
            if stop.is_set():
                return
            try:
                web.post(url + "/predict", content=big_png(i), headers={"Content-Type": "image/png"}, timeout=60)
            except httpx.TransportError:  # the server was killed
                stop.set()

        senders = ThreadPoolExecutor(2)
        jobs = [senders.submit(send, i) for i in range(80)]
        caught = False
        until = time.monotonic() + 240
        while not caught and not all(j.done() for j in jobs) and time.monotonic() < until:
            caught = pool.is_dir() and any(TEMP.fullmatch(n) for n in os.listdir(pool))  # a kept image being written
            if not caught:
                time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        stop.set()
        senders.shutdown(wait=True, cancel_futures=True)
        assert caught, "no kept image was being written while the images were sent"
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    visible = [n for n in os.listdir(pool) if not n.startswith(".")]
    whole = [n for n in visible if n.startswith("kept-")]
    for name in whole:  # every visible kept file is the whole image its name hashes
        data = (pool / name).read_bytes()
        assert name == f"kept-{hashlib.sha256(data).hexdigest()}.png"
    ds = scan_dataset(images)
    assert sorted(os.path.basename(it.path) for it in ds.pool) == sorted(whole)
    for it in ds.pool:
        assert decode_image(it.path).size == (1600, 1600)

    store = KeptStore(pool, 100000 * 2**20, images).open()  # the next start: the lock free, temp files gone, all recorded
    assert not [n for n in os.listdir(pool) if TEMP.fullmatch(n)]
    store.close()
    assert sorted(k.file for k in store.images.values()) == sorted(whole) == sorted(read_kept(pool))
