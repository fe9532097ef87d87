"""One local Ray instance (2 CPUs) for the Ray test files, and 200 images with hostile files among them."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from datagen import make_dataset
from scale_helpers import write_hostile
from schedule import scope_of


@pytest.fixture
def ray_address() -> str:
    """The address of the local Ray instance (2 CPUs), started by the first test that asks: the tests' own process
    is connected to it, and a subprocess points at it with --ray-address. The Ray test files run one after the
    other on one worker (schedule.py); the instance is shut down after the last of them, so its processes do not
    live on beside the rest of the run."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    return ray.get_runtime_context().gcs_address


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if "ray" in sys.modules and (nextitem is None or scope_of(nextitem.nodeid) != scope_of(item.nodeid)):
        sys.modules["ray"].shutdown()


@pytest.fixture(scope="session")
def images_200(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """192 generated JPEGs in three class folders and 8 hostile files: 200 inputs."""
    root = make_dataset(tmp_path_factory.mktemp("scale") / "images", n_per_class=64, seed=3, size=64)
    write_hostile(root / "hostile")
    return root
