"""Ray's local mode started once per session (2 CPUs), and 200 images with hostile files among them."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from datagen import make_dataset
from scale_helpers import write_hostile


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The address of this session's one Ray instance (2 CPUs): the tests' own process is connected to it, and a
    subprocess points at it with --ray-address."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def images_200(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """192 generated JPEGs in three class folders and 8 hostile files: 200 inputs."""
    root = make_dataset(tmp_path_factory.mktemp("scale") / "images", n_per_class=64, seed=3, size=64)
    write_hostile(root / "hostile")
    return root
