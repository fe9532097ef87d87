"""The actors of Ray Data's actor pool: each loads the bundle (or the run's featurizers) once, in its
constructor, then answers batches of a dataset.

They run on the cluster's machines, so they get plain values (paths, config sections as dicts) and
rebuild the config there: the engine resolves its backend, precision and threads for the machine the
actor runs on, as a local ``imgclf predict`` would; the decoder's pixel limit is set in each actor's
process, as the CLI sets it in its own. A batch comes in and goes out as a ``pyarrow.Table``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..config.settings import EngineConfig, ImagesConfig, PredictConfig, config_from_dict
from ..data.images import configure
from ..util.errors import ImgclfError

#: The columns a prediction adds to its input row, in this order (``scores``: a struct of the bundle's labels).
PREDICTION_COLUMNS = ("label", "score", "scores", "ood_score", "unknown", "nearest_label", "error")


def prediction_schema(labels: Sequence[str]) -> pa.Schema:
    """The Arrow types of :data:`PREDICTION_COLUMNS` for a bundle of ``labels``; a column a row lacks is null."""
    return pa.schema([("label", pa.string()), ("score", pa.float64()),
                      ("scores", pa.struct([(name, pa.float64()) for name in labels])),
                      ("ood_score", pa.float64()), ("unknown", pa.bool_()), ("nearest_label", pa.string()),
                      ("error", pa.string())])


def predictions_table(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> pa.Table:
    """Rows of :meth:`imgclf.inference.predict.Predictor.predict` as a table of :func:`prediction_schema`."""
    schema = prediction_schema(labels)
    return pa.table({name: pa.array([r.get(name) for r in rows], type=schema.field(name).type) for name in schema.names},
                    schema=schema)


def require_image_column(columns: Sequence[str]) -> None:
    """Refuse a dataset to predict that has neither a ``path`` nor a ``bytes`` column, naming the columns it has."""
    if not {"path", "bytes"} & set(columns):
        raise ImgclfError(f"a dataset to predict needs a 'path' or a 'bytes' column; it has {', '.join(columns)}",
                          hint="ray.data.read_binary_files(..., include_paths=True) gives both")


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """One record of a predictions table as local predict's row: ``path`` first, then what the prediction
    holds (the columns that are null for it left out), then the other input columns (``size``, ``mtime_ns``)."""
    known = ("path", *PREDICTION_COLUMNS)
    row = {k: record[k] for k in known if record.get(k) is not None}
    row.update((k, v) for k, v in record.items() if k not in known and v is not None)
    return row


def _threaded(engine: dict[str, Any], actor_cpus: float) -> EngineConfig:
    """``engine`` with ``threads`` 0 (all cores) made the actor's share of its machine: every actor on a node
    would otherwise run a thread per core of the whole node."""
    cfg = EngineConfig(**engine)
    return cfg if cfg.threads else dataclasses.replace(cfg, threads=max(1, int(actor_cpus)))


class PredictWorker:
    """A bundle loaded once (a :class:`imgclf.inference.predict.Predictor`); a batch with a ``path`` column
    (files the actor reads) or a ``bytes`` column (encoded images) becomes the batch's columns (``bytes``
    left out) and the prediction's (:data:`PREDICTION_COLUMNS`)."""

    def __init__(self, bundle_dir: str, engine: dict[str, Any], predict: dict[str, Any], images: dict[str, Any],
                 actor_cpus: float = 1, batch_size: int = 32):
        from ..inference.predict import Predictor

        configure(ImagesConfig(**images))
        self.predictor = Predictor(bundle_dir, _threaded(engine, actor_cpus), PredictConfig(**predict))
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        require_image_column(batch.column_names)  # a dataset whose columns the driver could not know before it ran
        if "bytes" in batch.column_names:
            rows = self.predictor.predict([bytes(b) for b in batch.column("bytes").to_pylist()], batch_size=self.batch_size)
            rows = [{k: v for k, v in r.items() if k != "reason"} for r in rows]
            batch = batch.drop_columns(["bytes"])
        else:
            rows = self.predictor.predict([str(p) for p in batch.column("path").to_pylist()], batch_size=self.batch_size)
        preds = predictions_table(rows, self.predictor.labels)
        for name in preds.column_names:
            batch = batch.append_column(preds.schema.field(name), preds.column(name))
        return batch


class FeatureWorker:
    """A run's featurizers loaded once (from the engine cache the driver filled); a batch of ``path`` becomes
    ``path``, ``ok``, ``features`` (a fixed-size list of float32), ``error`` and ``cache_hits``. Features go
    into the feature cache of ``data.root`` from here, as a local featurize puts them there."""

    def __init__(self, config: dict[str, Any], run_dir: str, actor_cpus: float = 1):
        from ..features.step import feature_cache_dir, run_featurizers
        from ..rundir.layout import RunDir

        cfg = config_from_dict(config)
        configure(cfg.images)
        self.cfg = dataclasses.replace(cfg, engine=_threaded(config["engine"], actor_cpus))
        self.engines = run_featurizers(self.cfg, RunDir(run_dir))
        self.cache_dir = feature_cache_dir(self.cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ..features.featurize import featurize_many

        paths = [str(p) for p in batch.column("path").to_pylist()]
        res = featurize_many(paths, self.engines, batch_size=self.cfg.featurize.batch_size, cache_dir=self.cache_dir,
                             threads=self.cfg.engine.threads, progress=False)
        errors = dict(res.errors)
        features = np.ascontiguousarray(res.features, dtype=np.float32)  # (N, D)
        hits = np.zeros(len(paths), dtype=np.int64)
        hits[:1] = res.cache_hits  # the batch's count, once: the driver sums the column
        return pa.table({"path": paths, "ok": res.ok,
                         "features": pa.FixedSizeListArray.from_arrays(features.ravel(), features.shape[1]),
                         "error": pa.array([errors.get(p) for p in paths], type=pa.string()), "cache_hits": hits})
