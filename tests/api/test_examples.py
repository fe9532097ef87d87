"""The notebooks in examples/ run top to bottom (nbclient, a real kernel) on small generated data, so a
broken example fails the build. Their `parameters` cell is followed by an injected one (as papermill
does) that makes them small and fast; notebook 3 downloads from a real HTTP server on 127.0.0.1.

One kernel runs the four (its start and its imports of torch and imgclf cost seconds of CPU each time): an
injected first cell empties its namespace (``%reset -f``) and enters the notebook's folder, so each notebook
still runs top to bottom on nothing it did not define or import itself."""
from __future__ import annotations

import csv
import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from datagen import make_image, shared_engines

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
SMALL = {"svm__cv_folds": 3, "svm__c_values": [0.01, 1.0, 100.0], "tracking__enabled": False, "model__resolution": 64}
# refinement as tests/datagen.py's TINY_REFINE: the model.* network (lite0 at 64 px), not lite2 at 320 px
SMALL_REFINE = {**SMALL, "refine__backbone": "", "refine__resolution": 0, "refine__batch_size": 4,
                "refine__base_lr": 0.003, "refine__val_fraction": 0.2, "engine__threads": 1}


def test_the_four_examples_are_stored_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == ["1_train_and_evaluate", "2_refine", "3_your_own_data", "4_deploy"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


@pytest.fixture
def image_server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 with a few generated JPEGs, and a label<TAB>url list of them."""
    site = tmp_path / "site"
    site.mkdir()
    rng = np.random.default_rng(11)
    lines = []
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for cls in ("dotted", "striped"):
        for i in range(3):
            make_image("circles" if cls == "dotted" else "stripes", rng, 160).save(site / f"{cls}{i}.jpg", quality=90)
            lines.append(f"{cls}\thttp://127.0.0.1:{server.server_address[1]}/{cls}{i}.jpg")
    (tmp_path / "urls.tsv").write_text("\n".join(lines) + "\n")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield tmp_path / "urls.tsv"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory):
    """One python3 kernel for the module's notebooks; its data root (IMGCLF_DATA_DIR) shares the session's engines."""
    from jupyter_client.manager import KernelManager

    root = shared_engines(tmp_path_factory.getbasetemp() / "examples-data")
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "IMGCLF_DATA_DIR": str(root)})
    yield km
    km.shutdown_kernel(now=True)


def _run(kernel, path: Path, work: Path, **params) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    values = {"SETTINGS": SMALL, "WORK": str(work), "N_PER_CLASS": 12, **params}
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()),
                                                      metadata={"tags": ["injected-parameters"]}))
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"%reset -f\n%cd -q {work}", metadata={"tags": ["injected-fresh-namespace"]}))
    client = nbclient.NotebookClient(nb, km=kernel, timeout=600)
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    return nb


@pytest.mark.slow
def test_1_train_and_evaluate(tmp_path, kernel):
    nb = _run(kernel, EXAMPLES / "1_train_and_evaluate.ipynb", tmp_path)
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "confusion matrix" in html and "data:image/png;base64," in html  # the classifier's picture and the map


@pytest.mark.slow
def test_2_refine(tmp_path, kernel):
    nb = _run(kernel, EXAMPLES / "2_refine.ipynb", tmp_path, EPOCHS=1, SETTINGS=SMALL_REFINE)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_3_your_own_data_downloads_from_a_real_server(tmp_path, kernel, image_server):
    _run(kernel, EXAMPLES / "3_your_own_data.ipynb", tmp_path, URL_LIST=str(image_server), ALLOW_PRIVATE=True)
    with open(tmp_path / "textures" / "download_report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert all((tmp_path / "textures" / r["path"]).is_file() for r in rows)
    with open(tmp_path / "textures" / "annotations.csv", newline="") as f:
        labelled = [r for r in csv.DictReader(f) if r["action"] == "label"]
    assert len(labelled) == 6  # the six suggestions, answered and recorded


@pytest.mark.slow
def test_4_deploy_answers_like_the_classifier(tmp_path, kernel):
    _run(kernel, EXAMPLES / "4_deploy.ipynb", tmp_path)
    assert (tmp_path / "model" / "bundle.json").is_file()
