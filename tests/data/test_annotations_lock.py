"""annotations.csv written by several processes at once (the web UI open while `dedup` or another
tool corrects the same dataset), and by a process killed with SIGKILL in mid-save."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from imgclf.data.annotations import read_history, record, undo_last

_WRITER = textwrap.dedent("""
    import sys
    from imgclf.data.annotations import record

    folder, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # "go": writers started together overlap
    for i in range(n):
        record(folder, [(f"{name}/img_{i:05d}.jpg", name, "exclude", "")])
""")


def _writer(folder: Path, name: str, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), name, str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _go(*procs: subprocess.Popen) -> None:
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


@pytest.mark.slow
def test_two_processes_recording_100_corrections_each_keep_all_200_rows(tmp_path):
    procs = [_writer(tmp_path, name, 100) for name in ("ui", "dedup")]
    _go(*procs)
    for p in procs:
        _, err = p.communicate(timeout=300)  # stdin closed: the writers already read their "go"
        assert p.returncode == 0, err
    rows = read_history(tmp_path)
    assert len(rows) == 200
    for name in ("ui", "dedup"):
        mine = [r.path for r in rows if r.original_label == name]
        assert mine == [f"{name}/img_{i:05d}.jpg" for i in range(100)], "every row kept, in each writer's order"


def test_a_thread_undoing_while_another_process_records_loses_nothing(tmp_path):
    record(tmp_path, [("a/x.jpg", "a", "exclude", "")])
    proc = _writer(tmp_path, "other", 50)
    _go(proc)
    assert undo_last(tmp_path, "a/x.jpg").path == "a/x.jpg"
    proc.communicate(timeout=300)
    rows = read_history(tmp_path)
    assert len(rows) == 1 + 1 + 50 and sum(r.undoes == "1" for r in rows) == 1


@pytest.mark.slow
def test_kill_9_during_annotation_saves_leaves_a_complete_history(tmp_path):
    rng = np.random.default_rng(0)
    for attempt in range(3):
        before = len(read_history(tmp_path))
        proc = _writer(tmp_path, f"k{attempt}", 100_000)
        _go(proc)
        time.sleep(float(rng.uniform(0.2, 0.8)))  # somewhere inside a read-modify-write
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        rows = read_history(tmp_path)  # parses: no half-written file was ever in place
        mine = [r.path for r in rows if r.original_label == f"k{attempt}"]
        assert mine == [f"k{attempt}/img_{i:05d}.jpg" for i in range(len(mine))], "a whole prefix of the writes"
        assert len(rows) == before + len(mine)
    record(tmp_path, [("after/kill.jpg", "after", "exclude", "")])  # the lock died with its holder
    assert read_history(tmp_path)[-1].path == "after/kill.jpg"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["annotations.csv"]
