"""The CLI configures logging: imgclf's library lines on stderr as plain messages, --quiet keeps
warnings, other libraries only warn."""
import logging

import pytest

from imgclf.cli import configure_logging


@pytest.fixture
def restore_logging():
    root, ours = logging.getLogger(), logging.getLogger("imgclf")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


def _lines():
    logging.getLogger("imgclf.features.featurize").info("featurized %d images", 3)
    logging.getLogger("imgclf.serve").warning("port in use")
    logging.getLogger("someotherlib").info("chatter")
    logging.getLogger("someotherlib").warning("deprecated call")


def test_library_lines_are_plain_messages_on_stderr(capsys, restore_logging):
    configure_logging(quiet=False)
    configure_logging(quiet=False)  # a second call replaces its handler: no line twice
    _lines()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["featurized 3 images", "port in use", "deprecated call"]


def test_quiet_keeps_warnings_only(capsys, restore_logging):
    configure_logging(quiet=True)
    _lines()
    assert capsys.readouterr().err.splitlines() == ["port in use", "deprecated call"]

