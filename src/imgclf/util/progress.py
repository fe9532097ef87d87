"""The one progress bar of every long loop (check images, featurize, the C search, refine, download, dedup): tqdm
on stderr in a terminal, a notebook widget in Jupyter (``tqdm.auto``); and the progress file a run reports to
when asked.

The progress file (opt-in: ``$IMGCLF_PROGRESS_FILE``, which the web UI's training jobs set) holds one JSON
object, replaced atomically::

    {"stage": "featurize", "task": "featurize test", "done": 40, "total": 120, "unit": "img",
     "rate": 12.5, "eta_s": 6.4, "updated": 1764950400.5, "stage_started": ..., "started": ..., "pid": 4242}

``stage``: the step of the run (:func:`report_stage`, called by :mod:`imgclf.pipeline.steps`); ``task``,
``done``, ``total``, ``unit``: the innermost bar running now (null between bars); ``rate``: units per
second over the last seconds; ``eta_s``: seconds left at that rate; times are Unix seconds. Bars update it
at most twice a second, and a heartbeat thread rewrites it about every second while the process lives, so a
step without a bar (building a featurizer, the doctor) still shows it is alive. A native call that holds the
interpreter (exporting a network to ONNX) can delay a heartbeat by a second or two.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV = "IMGCLF_PROGRESS_FILE"
MIN_INTERVAL_S = 0.5  # bars write at most twice a second
HEARTBEAT_S = 0.75  # the heartbeat rewrites the file when its last write is this old
_RATE_WINDOW_S = 10.0  # the rate is measured over the last seconds of a bar


class Bar:
    """A progress bar of ``total`` ``unit``s: drawn by tqdm when shown, reported to the progress file when one is set."""

    def __init__(self, total: int, desc: str, unit: str, leave: bool, show: bool):
        self.total, self.desc, self.unit, self.done = int(total), desc, unit, 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(time.monotonic(), 0)])
        self._tqdm = None
        if show:
            from tqdm.auto import tqdm  # imported only when a bar is drawn

            self._tqdm = tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, mininterval=MIN_INTERVAL_S)
        self._file = reporter()
        if self._file is not None:
            self._file.push(self)

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > _RATE_WINDOW_S:
            self._samples.popleft()
        if self._tqdm is not None:
            self._tqdm.update(n)
        if self._file is not None:
            self._file.changed()

    def rate(self) -> float | None:
        """Units per second over the last :data:`_RATE_WINDOW_S` seconds (None before the first update)."""
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        if self._file is not None:
            self._file.pop(self)
            self._file = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int, desc: str, *, unit: str = "img", leave: bool = False, show: bool = True) -> Bar:
    """A bar of ``total`` ``unit``s, redrawn at most twice a second; ``show=False``: not drawn (a quiet command,
    a loop inside another step) but still reported to the progress file when ``$IMGCLF_PROGRESS_FILE`` is set."""
    return Bar(total, desc, unit, leave, show)


def report_stage(name: str) -> None:
    """The run entered step ``name`` (prepare, select, featurize, train, refine, evaluate, doctor): written to
    the progress file at once when one is set."""
    file = reporter()
    if file is not None:
        file.stage(name)


class ProgressFile:
    """The progress file at ``path``: the current stage and the bars running in it, rewritten atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._bars: list[Bar] = []
        self._stage, self._started = "", time.time()
        self._stage_started = self._started
        self._written = 0.0  # monotonic time of the last write
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, name="progress-file", daemon=True).start()

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage, self._stage_started = name, time.time()
            self._bars.clear()  # a bar a failed step left open is over too
            self._write()

    def push(self, bar: Bar) -> None:
        with self._lock:
            self._bars.append(bar)
            self._write()

    def pop(self, bar: Bar) -> None:
        with self._lock:
            if bar in self._bars:
                self._bars.remove(bar)
            self._write()

    def changed(self) -> None:
        """A bar moved: written when the last write is at least :data:`MIN_INTERVAL_S` old."""
        if time.monotonic() - self._written >= MIN_INTERVAL_S:
            with self._lock:
                self._write()

    def snapshot(self) -> dict[str, Any]:
        bar = self._bars[-1] if self._bars else None
        rate = bar.rate() if bar is not None else None
        left = bar.total - bar.done if bar is not None else 0
        return {"stage": self._stage, "task": bar.desc if bar else None, "done": bar.done if bar else None,
                "total": bar.total if bar else None, "unit": bar.unit if bar else None,
                "rate": round(rate, 2) if rate else None, "eta_s": round(left / rate, 1) if rate else None,
                "updated": round(time.time(), 3), "stage_started": round(self._stage_started, 3),
                "started": round(self._started, 3), "pid": os.getpid()}

    def _write(self) -> None:
        """Replace the file (temp file + rename: a reader sees the old or the new object, never a part);
        a failed write is skipped, never the run's failure. Called with the lock held."""
        self._written = time.monotonic()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
            os.replace(tmp, self.path)

    def stop(self) -> None:
        """No more heartbeats (the process reports to another file now)."""
        self._stop.set()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S / 3):
            if time.monotonic() - self._written >= HEARTBEAT_S:
                with self._lock:
                    self._write()


_reporter: ProgressFile | None = None
_reporter_lock = threading.Lock()


def reporter() -> ProgressFile | None:
    """The process's progress file (``$IMGCLF_PROGRESS_FILE``), or None when it is not set."""
    global _reporter
    path = os.environ.get(ENV)
    if not path:
        return None
    with _reporter_lock:
        if _reporter is None or _reporter.path != Path(path):
            if _reporter is not None:
                _reporter.stop()
            _reporter = ProgressFile(path)
        return _reporter
