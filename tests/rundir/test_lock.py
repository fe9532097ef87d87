"""One writer per run directory: a second command is refused at once, naming the holder; readers never wait."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from datagen import make_dataset, tiny_config
from cliutil import cli
from rundir_helpers import start, tiny_sets, wait_for

from imgclf.pipeline.steps import prepare
from imgclf.rundir.lock import HOLDER, RunDirLocked, holder, locked
from imgclf.util.files import read_csv

_HOLD = textwrap.dedent("""
    import sys, time
    from imgclf.rundir.lock import locked
    with locked(sys.argv[1], "train"):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.mark.slow
def test_two_runs_on_one_run_dir_the_second_is_refused_naming_the_first(tmp_path, capsys):
    images = make_dataset(tmp_path / "images", n_per_class=10, seed=1)
    rd = tmp_path / "run"
    first = start("run", "-q", "--images", images, "--run-dir", rd, *tiny_sets(tmp_path / "data"))
    wait_for(lambda: (rd / HOLDER).is_file(), first, "the first run held the run directory")
    second = cli(capsys, "run", "-q", "--images", images, "--run-dir", rd, *tiny_sets(tmp_path / "data"), "--set", "data.seed=7")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    assert f"is being written by `imgclf run` (pid {first.pid} on " in second.stderr
    assert re.search(r"since \d{4}-\d\d-\d\dT", second.stderr) and "hint: wait for it to finish" in second.stderr
    # the first printed its own split's figures
    rows = read_csv(rd / "split.csv")
    counts = re.search(r"\(train (\d+), test (\d+)\)", out)
    assert counts and (int(counts[1]), int(counts[2])) == (sum(r["split"] == "train" for r in rows),
                                                          sum(r["split"] == "test" for r in rows))
    assert not (rd / HOLDER).exists() and not (rd / "INCOMPLETE").exists()


def test_a_step_is_refused_while_another_process_holds_the_run_and_runs_once_it_is_killed(tmp_path):
    rd = tmp_path / "run"
    cfg = tiny_config(tmp_path / "data", make_dataset(tmp_path / "images", n_per_class=6))
    other = subprocess.Popen([sys.executable, "-c", _HOLD, str(rd)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        assert holder(rd)["pid"] == other.pid and holder(rd)["command"] == "train"
        with pytest.raises(RunDirLocked, match=rf"`imgclf train` \(pid {other.pid} on .*`imgclf prepare` cannot write it"):
            prepare(cfg, rd)
        assert not (rd / "split.csv").exists()
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    assert holder(rd) is None  # the killed holder's file names a dead process
    assert prepare(cfg, rd)["images"] == 18  # the OS released its lock


def test_the_lock_is_reentrant_for_its_thread_and_refuses_other_threads(tmp_path):
    refused: list[str] = []

    def other_thread() -> None:
        try:
            with locked(tmp_path, "doctor"):
                pass
        except RunDirLocked as e:
            refused.append(e.message)

    with locked(tmp_path, "run"):
        with locked(tmp_path, "prepare"):  # run holds it around its steps
            assert holder(tmp_path)["command"] == "run"
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert holder(tmp_path)["command"] == "run"
    assert len(refused) == 1 and "`imgclf run`" in refused[0] and "`imgclf doctor` cannot write it" in refused[0]
    with locked(tmp_path, "doctor"):
        assert holder(tmp_path)["command"] == "doctor"
    assert holder(tmp_path) is None
