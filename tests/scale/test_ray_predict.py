"""predict through Ray (Ray Data's actor pool) answers as local predict does, row for row: labels identical,
scores within 1e-5, unreadable files listed with their reason, never fatal."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgclf.bundle.folder import bundle_engine
from imgclf.cli import main
from imgclf.config.settings import ImagesConfig, PredictConfig
from imgclf.inference.predict import Predictor, expand_inputs
from imgclf.scale.workers import PredictWorker
from imgclf.util.errors import ImgclfError


def _same_answer(local: dict, remote: dict) -> None:
    assert ("error" in local) == ("error" in remote), (local, remote)
    if "error" in local:
        assert remote["error"] == local["error"]
        return
    for key in ("label", "unknown", "nearest_label"):
        assert remote.get(key) == local.get(key), (key, local, remote)
    assert remote["scores"].keys() == local["scores"].keys()
    np.testing.assert_allclose(list(remote["scores"].values()), list(local["scores"].values()), atol=1e-5)
    np.testing.assert_allclose(remote["score"], local["score"], atol=1e-5)
    if "ood_score" in local:
        np.testing.assert_allclose(remote["ood_score"], local["ood_score"], atol=1e-4)


pytestmark = pytest.mark.slow  # an actor pool loads the bundle per test (seconds on a shared CPU)


@pytest.fixture(scope="module")
def local(trained_run, images_200) -> dict[str, dict]:
    """Local predict's row of each of the 200 inputs, by path: what every Ray row is compared with."""
    return {r["path"]: r for r in Predictor(trained_run / "model").predict(expand_inputs([images_200]))}


def test_predict_with_ray_gives_local_predicts_rows_for_200_images_with_hostile_files(ray_address, trained_run, images_200, local,
                                                                                       tmp_path, capsys):
    model = trained_run / "model"
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(model), str(images_200), "--ray", "--out", str(out)]) == 1  # 8 unreadable: exit 1, as locally
    text = capsys.readouterr()
    assert "predicted 200 of 200 images" in text.out and "error: 8 of 200 images could not be read" in text.err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_path = {r["path"]: r for r in rows}
    assert len(rows) == len(by_path) == len(local) == 200
    for r in local.values():
        _same_answer(r, by_path[r["path"]])
    errors = {r["path"].rsplit("/", 1)[1]: r["error"] for r in rows if "error" in r}
    assert len(errors) == 8 and errors["fifo.jpg"].startswith("not_a_file") and "FIFO" in errors["fifo.jpg"]
    assert errors["bomb.png"].startswith("too_large") and errors["disguised.png"].startswith("unsupported_format")
    assert all(isinstance(r["size"], int) and isinstance(r["mtime_ns"], int) for r in rows if not r["path"].endswith("fifo.jpg"))


def test_parquet_output_and_the_python_api_give_the_same_rows(ray_address, trained_run, images_200, local, tmp_path):
    import ray

    import imgclf

    model = trained_run / "model"
    # a folder and files: 40 rows, more than one batch of 32 (the parts of several batches become one file)
    inputs = [images_200 / "hostile", *sorted((images_200 / "squares").glob("*.jpg"))[:32]]
    expected = {p: local[p] for p in expand_inputs(inputs)}
    out = tmp_path / "preds.parquet"
    assert main(["predict", str(model), *map(str, inputs), "--ray", "--out", str(out), "--actors", "1"]) == 1
    assert not (tmp_path / "preds.parquet.parts").exists()
    table = pq.read_table(out)
    assert table.num_rows == len(expected) == 40 and table.schema.field("scores").type.num_fields == 3
    for rec in table.to_pylist():
        rec["scores"] = rec["scores"] or {}
        _same_answer(expected[rec["path"]], {k: v for k, v in rec.items() if v is not None and v != {}})
    # a Ray Dataset of encoded images in, a Ray Dataset out (what a user's pipeline does)
    ds = ray.data.read_binary_files(str(images_200 / "hostile"), include_paths=True)
    got = imgclf.ray.predict(ds, model, actors=1).take_all()
    readable = {p for p in expected if "/hostile/" in p and not p.endswith("fifo.jpg")}  # Ray's reader lists regular files only
    assert {r["path"] for r in got} == readable and all("bytes" not in r for r in got)
    assert all(r["error"] for r in got)
    # paths in, as a list
    squares = sorted(p for p in expected if "/squares/" in p)[:3]
    got = imgclf.ray.predict(squares, model, actors=1).take_all()
    assert [r["path"] for r in got] == squares and [r["label"] for r in got] == [expected[p]["label"] for p in squares]


def test_a_dataset_without_a_path_or_bytes_column_is_refused_by_name_before_it_runs(ray_address, trained_run):
    import ray

    import imgclf

    with pytest.raises(ImgclfError, match="needs a 'path' or a 'bytes' column; it has id"):
        imgclf.ray.predict(ray.data.range(3), trained_run / "model", actors=1)  # its columns are known: no actor starts


def test_an_actor_refuses_a_batch_without_a_path_or_bytes_column(trained_run):
    """What a dataset whose columns show only when it runs (a map) meets in the first actor."""
    model = trained_run / "model"
    worker = PredictWorker(str(model), dataclasses.asdict(bundle_engine(model)), dataclasses.asdict(PredictConfig()),
                           dataclasses.asdict(ImagesConfig()))
    with pytest.raises(ImgclfError, match="needs a 'path' or a 'bytes' column; it has id, size"):
        worker(pa.table({"id": [1, 2], "size": [3, 4]}))
