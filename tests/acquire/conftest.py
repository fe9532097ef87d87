"""Fixtures of the acquire tests: loopback HTTP servers."""
from __future__ import annotations

import pytest
from acquire_helpers import TestServer, standard_routes


@pytest.fixture
def server():
    s = TestServer()
    standard_routes(s)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def other_server():
    """A second loopback server: the target of redirects that must be refused."""
    s = TestServer()
    standard_routes(s)
    s.start()
    yield s
    s.stop()
