"""The notebooks in examples/ run top to bottom (nbclient, a real kernel) on small generated data, so a
broken example fails the build. Their `parameters` cell is followed by an injected one (as papermill
does) that makes them small and fast; notebook 3 downloads from a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import csv
import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from datagen import make_image

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
SMALL = {"svm__cv_folds": 3, "svm__c_values": [0.01, 1.0, 100.0], "tracking__enabled": False, "model__resolution": 96}


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


def _run(path: Path, work: Path, **params) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    values = {"SETTINGS": SMALL, "WORK": str(work), "N_PER_CLASS": 12, **params}
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()),
                                                      metadata={"tags": ["injected-parameters"]}))
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    return nb


@pytest.fixture
def examples_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path_factory.getbasetemp() / "examples-data"  # one data root: the featurizer is exported once
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(root))
    return root


@pytest.mark.slow
def test_1_train_and_evaluate(tmp_path, examples_env):
    nb = _run(EXAMPLES / "1_train_and_evaluate.ipynb", tmp_path)
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "confusion matrix" in html and "data:image/png;base64," in html  # the classifier's picture and the map


@pytest.mark.slow
def test_2_refine(tmp_path, examples_env):
    nb = _run(EXAMPLES / "2_refine.ipynb", tmp_path, EPOCHS=1)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_3_your_own_data_downloads_from_a_real_server(tmp_path, examples_env, image_server):
    _run(EXAMPLES / "3_your_own_data.ipynb", tmp_path, URL_LIST=str(image_server), ALLOW_PRIVATE=True)
    with open(tmp_path / "textures" / "download_report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert all((tmp_path / "textures" / r["path"]).is_file() for r in rows)
    with open(tmp_path / "textures" / "annotations.csv", newline="") as f:
        labelled = [r for r in csv.DictReader(f) if r["action"] == "label"]
    assert len(labelled) == 6  # the six suggestions, answered and recorded


@pytest.mark.slow
def test_4_deploy_answers_like_the_classifier(tmp_path, examples_env):
    _run(EXAMPLES / "4_deploy.ipynb", tmp_path)
    assert (tmp_path / "model" / "bundle.json").is_file()
