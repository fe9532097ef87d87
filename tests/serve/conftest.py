"""Fixtures of the service tests: one Predictor per session and a shared real server."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest
from serve_helpers import running
import web


@pytest.fixture(scope="session")
def bundle_dir(trained_run: Path) -> Path:
    return trained_run / "model"


@pytest.fixture(scope="session")
def predictor(bundle_dir: Path):
    from imgclf.inference.predict import Predictor

    return Predictor(bundle_dir)


@pytest.fixture(scope="module")
def server(predictor) -> Iterator[str]:
    """A server with default settings (no token), shared by a test module."""
    with running(predictor) as (url, _):
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with web.client(timeout=60) as c:
        yield c


