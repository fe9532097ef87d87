"""The INCOMPLETE marker's chain: which step each command leaves to run again, and which commands it refuses."""
from __future__ import annotations

import pytest

from imgclf.rundir.state import INCOMPLETE, MADE_BY, RunIncomplete, begin, finish, read_incomplete

# (command, the step left to run again after it finishes; None: the run is whole)
AFTER = [("prepare", "featurize"), ("featurize", "train"), ("train", "evaluate"), ("refine", "evaluate"),
         ("evaluate", None), ("doctor", None), ("run", None)]


@pytest.mark.parametrize("command, after", AFTER)
def test_a_command_that_finishes_leaves_the_steps_after_it_to_run_again(tmp_path, command, after):
    marker = begin(tmp_path, command)
    assert (tmp_path / MADE_BY).is_file()
    during = read_incomplete(tmp_path)
    assert (during.command, during.finished) == (command, None)  # written first: a kill now leaves it
    finish(tmp_path, marker)
    left = read_incomplete(tmp_path)
    assert (left.next if left else None) == after
    assert (left is None) == (not (tmp_path / INCOMPLETE).exists())


# (step left to run again, commands allowed then)
ALLOWED = [("prepare", {"prepare", "run"}),
           ("featurize", {"prepare", "featurize", "train", "refine", "run"}),
           ("train", {"prepare", "featurize", "train", "refine", "run"}),
           ("evaluate", {"prepare", "featurize", "train", "refine", "evaluate", "run"}),
           ("doctor", {"prepare", "featurize", "train", "refine", "evaluate", "doctor", "run"})]
COMMANDS = ("prepare", "featurize", "train", "refine", "evaluate", "doctor", "run")


@pytest.mark.parametrize("pending, allowed", ALLOWED)
def test_a_command_that_would_build_on_an_unfinished_step_is_refused(tmp_path, pending, allowed):
    for command in COMMANDS:
        (tmp_path / INCOMPLETE).unlink(missing_ok=True)
        begin(tmp_path, pending)  # ... and killed: the marker stays
        assert read_incomplete(tmp_path).next == pending
        if command in allowed:
            begin(tmp_path, command)
        else:
            with pytest.raises(RunIncomplete, match=f"`imgclf {pending}` started at .* did not finish.*"
                                                    f"`imgclf {command}` would build on it"):
                begin(tmp_path, command)


def test_an_unreadable_marker_still_says_incomplete(tmp_path):
    (tmp_path / INCOMPLETE).write_text("{half")
    assert read_incomplete(tmp_path).next == "prepare"
    with pytest.raises(RunIncomplete, match="its INCOMPLETE marker cannot be read") as e:
        begin(tmp_path, "evaluate")
    assert e.value.hint == f"rerun it: `imgclf run --run-dir {tmp_path}`, or `imgclf prepare --run-dir {tmp_path}` and the steps after it"
    finish(tmp_path, begin(tmp_path, "run"))
    assert read_incomplete(tmp_path) is None
