"""What a user's own Ray pipeline calls: ``imgclf.ray.predict(dataset, bundle)`` → a Ray Dataset of predictions.

>>> import ray, imgclf                                                              # doctest: +SKIP
>>> ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)      # doctest: +SKIP
>>> imgclf.ray.predict(ds, "runs/pets/model").write_parquet("s3://bucket/preds/")   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pyarrow as pa

from ..bundle.folder import bundle_engine
from ..config.settings import EngineConfig, ImagesConfig, PredictConfig
from .cluster import actor_pool, require_ray
from .workers import PREDICTION_COLUMNS, PredictWorker, require_image_column

if TYPE_CHECKING:
    import ray.data

__all__ = ["predict", "PREDICTION_COLUMNS"]


def blocks(table: pa.Table, rows: int) -> list[pa.Table]:
    """``table`` cut into blocks of ``rows`` rows: the actors share the work block by block, and each finished
    block reaches the driver (and the output) on its own."""
    return [table.slice(i, rows) for i in range(0, table.num_rows, rows)] or [table]


def predict(data: "ray.data.Dataset | Iterable[str | os.PathLike]", bundle: str | os.PathLike, *,
            engine: EngineConfig | None = None, predict: PredictConfig | None = None, images: ImagesConfig | None = None,
            actors: int | None = None, actor_cpus: float = 1, batch_size: int = 32) -> "ray.data.Dataset":
    """Predictions of ``data`` by the bundle at ``bundle``, as a (lazy) Ray Dataset.

    ``data``: a Ray Dataset with a ``path`` column (image files every node reads at that path) or a ``bytes``
    column (encoded images: ``ray.data.read_binary_files(..., include_paths=True)``), or paths. A dataset with
    neither is refused here when Ray knows its columns without running it, else by the first actor. Each row of
    the result holds its input columns (``bytes`` left out) and :data:`PREDICTION_COLUMNS`: local predict's
    answer (``scores`` a struct of the bundle's labels; ``error`` set, the others null, for an unreadable image).

    An actor pool of ``actors`` actors (None: the cluster's CPUs / ``actor_cpus``) of ``actor_cpus`` CPUs each;
    each loads the bundle (which every node must read at the path ``bundle``) once. ``engine`` (default: the
    bundle's own settings) is resolved on each actor's machine; ``threads`` 0 becomes ``actor_cpus``.
    """
    ray = require_ray()
    bundle = Path(bundle).resolve()
    if not isinstance(data, ray.data.Dataset):
        paths = [os.path.abspath(p) for p in data]
        data = ray.data.from_arrow(blocks(pa.table({"path": pa.array(paths, type=pa.string())}), batch_size))
    schema = data.schema(fetch_if_missing=False)  # known without running anything (a read, a table) or None (a map)
    if schema is not None:
        require_image_column(schema.names)  # refused here, before an actor loads the bundle for nothing
    kwargs = {"bundle_dir": str(bundle), "engine": dataclasses.asdict(engine or bundle_engine(bundle)),
              "predict": dataclasses.asdict(predict or PredictConfig()), "images": dataclasses.asdict(images or ImagesConfig()),
              "actor_cpus": actor_cpus, "batch_size": batch_size}
    return data.map_batches(PredictWorker, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="pyarrow",
                            **actor_pool(ray, actors, actor_cpus))
