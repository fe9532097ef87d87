"""The one precedence rule of every command that resolves a config:

    base (a run's saved config, a bundle's engine) < --config file < the command's own options < --set

Each test runs the real command line in-process (``imgclf.cli.main``) and looks at the config it
resolved, through the cheapest observable: what ``imgclf config`` prints, the config.json a step
writes, or (for commands whose work is slow or serves forever) the config handed to the library
function the command calls, which a stand-in captures instead of doing the work.
"""
from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest
from datagen import make_dataset

from imgclf.cli import main
from imgclf.config.settings import Config, flatten, load_config
from imgclf.rundir.layout import RunDir

# Three layers, each key showing one step of the rule (see _expect). The saved config and the
# bundle both differ from the defaults, so a layer that was dropped shows up as a default value.
SAVED = {"svm.max_iter": 1111, "data.seed": 11, "svm.cv_folds": 2, "tracking.enabled": False}
FILE = {"data.seed": 22, "svm.cv_folds": 3, "refine.epochs": 5}
SET = ["svm.cv_folds=4"]
DEFAULTS = flatten(Config())


def _expect(base: dict[str, Any] | None) -> dict[str, Any]:
    """What base < FILE < SET resolves to on the keys above."""
    return {"svm.max_iter": (base or DEFAULTS)["svm.max_iter"],  # base only: kept when --config is given
            "data.seed": 22,  # base and file: the file wins
            "svm.cv_folds": 4,  # base, file and --set: --set wins
            "refine.epochs": 5}  # file only: beats the default


def _pick(cfg: Config, expected: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(cfg)
    return {k: flat[k] for k in expected}


def write_toml(path: Path, values: dict[str, Any]) -> Path:
    """A --config file setting ``{"section.key": value}`` (JSON scalars and lists are TOML too)."""
    sections: dict[str, list[str]] = {}
    for key, v in values.items():
        sec, k = key.split(".")
        sections.setdefault(sec, []).append(f"{k} = {json.dumps(v)}")
    path.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    return path


def sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


class Resolved(Exception):
    """Raised by a stand-in for a command's library function, carrying what the command passed."""


def resolved(monkeypatch, target: str, argv: list[str], pick: Callable[..., Any] = lambda *a, **k: a[0]) -> Any:
    """Run ``imgclf ARGV`` with ``target`` ("module.function") replaced by a stand-in; what it got."""
    def stand_in(*args: Any, **kwargs: Any) -> Any:
        raise Resolved(pick(*args, **kwargs))

    monkeypatch.setattr(target, stand_in)
    with pytest.raises(Resolved) as e:
        main(argv)
    return e.value.args[0]


@pytest.fixture(autouse=True)
def _isolated(data_root):
    """Every default data.root points into the test's tmp folder."""


@pytest.fixture
def cfg_file(tmp_path) -> Path:
    return write_toml(tmp_path / "c.toml", FILE)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A run directory made by `imgclf prepare` whose saved config holds SAVED (read-only)."""
    base = tmp_path_factory.mktemp("prepared")
    images = make_dataset(base / "images", n_per_class=4, size=32)
    rd = base / "run"
    argv = ["prepare", "--run-dir", str(rd), "--images", str(images),
            *sets(f"data.root={json.dumps(str(base / 'data'))}", *(f"{k}={json.dumps(v)}" for k, v in SAVED.items()))]
    assert main(argv) == 0
    assert {k: flatten(RunDir(rd).saved_config())[k] for k in SAVED} == SAVED
    return rd


@pytest.fixture(scope="module")
def bundle(trained_run, tmp_path_factory) -> Path:
    """A copy of the trained bundle whose engine settings differ from the defaults (int8, 3 threads)."""
    from imgclf.bundle.folder import rewrite_bundle

    model = tmp_path_factory.mktemp("bundle") / "model"
    shutil.copytree(trained_run / "model", model)
    rewrite_bundle(model, meta_update={"engine": {"backend": "onnxruntime", "precision": "int8", "threads": 3}})
    return model


# ---------------------------------------------------------------- commands without a base


def test_config(cfg_file, capsys):
    assert main(["config", "--config", str(cfg_file), *sets(*SET)]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert {k: printed[k.split(".")[0]][k.split(".")[1]] for k in _expect(None)} == _expect(None)


def test_run(monkeypatch, tmp_path, cfg_file):
    flag, file_images, set_images = (tmp_path / d for d in ("flag_images", "file_images", "set_images"))
    flag.mkdir(), set_images.mkdir()  # a folder that does not exist is refused before the run starts
    write_toml(cfg_file, {**FILE, "data.images": str(file_images)})
    argv = ["run", "--config", str(cfg_file), "--images", str(flag), "--run-dir", str(tmp_path / "run")]
    cfg = resolved(monkeypatch, "imgclf.api.run", argv + sets(*SET))
    assert _pick(cfg, _expect(None)) == _expect(None)
    assert cfg.data.images == str(flag.resolve())  # --images beats the file
    cfg = resolved(monkeypatch, "imgclf.api.run", argv + sets(f"data.images={json.dumps(str(set_images))}"))
    assert cfg.data.images == str(set_images)  # --set beats --images


def test_prepare_writes_the_resolved_config(tmp_path, cfg_file):
    flag = make_dataset(tmp_path / "flag_images", n_per_class=3, size=32)
    other = make_dataset(tmp_path / "set_images", n_per_class=3, size=32, classes=("a", "b"))
    write_toml(cfg_file, {**FILE, "data.images": str(tmp_path / "missing")})
    argv = ["prepare", "--config", str(cfg_file), "--images", str(flag), *sets(f"data.root={json.dumps(str(tmp_path))}")]
    assert main([*argv, "--run-dir", str(tmp_path / "r1"), *sets(*SET)]) == 0
    cfg = RunDir(tmp_path / "r1").saved_config()
    assert _pick(cfg, _expect(None)) == _expect(None)
    assert cfg.data.images == str(flag.resolve())  # --images beats the file
    assert main([*argv, "--run-dir", str(tmp_path / "r2"), *sets(f"data.images={json.dumps(str(other))}")]) == 0
    assert RunDir(tmp_path / "r2").saved_config().data.images == str(other)  # --set beats --images
    assert {r.label for r in RunDir(tmp_path / "r2").split_rows()} == {"a", "b"}


def test_demo(monkeypatch, tmp_path, cfg_file):
    write_toml(cfg_file, {**FILE, "data.root": str(tmp_path / "file_root"), "data.dataset": "from_file"})
    monkeypatch.setattr("imgclf.data.demo.generate_demo", lambda images, **kw: {})
    cfg = resolved(monkeypatch, "imgclf.api.run", ["demo", "--config", str(cfg_file), "--run-dir", str(tmp_path / "run"),
                                                   *sets(*SET, "data.dataset=from_set")])
    assert _pick(cfg, _expect(None)) == _expect(None)
    assert cfg.data.images == str(tmp_path / "file_root" / "datasets" / "from_set")


def test_ui(monkeypatch, tmp_path, cfg_file, capsys):
    write_toml(cfg_file, {**FILE, "serve.host": "127.0.0.2", "serve.port": 8101, "serve.max_batch_size": 4})
    cfg = resolved(monkeypatch, "imgclf.ui.server.serve_ui",
                   ["ui", "--images", str(tmp_path), "--config", str(cfg_file), "--host", "127.0.0.3", "--port", "8102",
                    *sets(*SET, "serve.host=127.0.0.4")])
    assert _pick(cfg, _expect(None)) == _expect(None)
    assert (cfg.serve.max_batch_size, cfg.serve.port, cfg.serve.host) == (4, 8102, "127.0.0.4")  # file, flag, --set
    assert capsys.readouterr().out.startswith("web UI: http://127.0.0.4:8102/ui/dataset")


@pytest.mark.parametrize("argv", [["runs", "list"], ["runs", "show", "abc"], ["runs", "compare", "abc", "def"]])
def test_runs(tmp_path, argv, capsys):
    """Observable: the error naming the (absent) store the command resolved; nothing is created."""
    f = write_toml(tmp_path / "c.toml", {"tracking.uri": f"sqlite:///{tmp_path / 'file.db'}"})
    for extra, store in (([], "file.db"), (sets(f"tracking.uri=sqlite:///{tmp_path / 'set.db'}"), "set.db")):
        assert main([*argv, "--config", str(f), *extra]) == 2
        assert capsys.readouterr().err.startswith(f"error: no tracking store at {tmp_path / store}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


# ---------------------------------------------------------------- acquire: --dataset / --images are flags

def _dataset_cases(tmp_path: Path) -> list[tuple[list[str], Path]]:
    """(arguments, dataset folder) for a --config file with data.root R1, data.dataset a and data.images F."""
    r2, i, s = tmp_path / "r2", tmp_path / "flag_images", tmp_path / "set_images"
    root = [*sets(f"data.root={json.dumps(str(r2))}")]  # --set beats the file's data.root
    return [
        ([*sets(*SET), *root, "--set", 'data.images=""'], r2 / "datasets" / "a"),  # the file's data.dataset
        ([*root, "--dataset", "b"], r2 / "datasets" / "b"),  # --dataset beats the file (data.images too)
        ([*root, "--dataset", "b", *sets("data.dataset=c")], r2 / "datasets" / "c"),  # --set beats it
        (["--images", str(i)], i),  # --images beats the file
        (["--images", str(i), "--dataset", "b"], i),  # ... and --dataset
        (["--images", str(i), *sets(f"data.images={json.dumps(str(s))}")], s),  # --set beats --images
    ]


def _acquire_file(tmp_path: Path, **extra: Any) -> Path:
    return write_toml(tmp_path / "acquire.toml", {**FILE, "data.root": str(tmp_path / "r1"), "data.dataset": "a",
                                                  "data.images": str(tmp_path / "file_images"), **extra})


def test_download(monkeypatch, tmp_path):
    urls = tmp_path / "urls.tsv"
    urls.write_text("")
    f = _acquire_file(tmp_path)
    for args, folder in _dataset_cases(tmp_path):
        got = resolved(monkeypatch, "imgclf.acquire.download.download_url_list",
                       ["download", str(urls), "--config", str(f), *args], pick=lambda urls, folder, *a, **k: folder)
        assert Path(got) == folder, args


def test_scrape(monkeypatch, tmp_path):
    f = _acquire_file(tmp_path)
    for args, folder in _dataset_cases(tmp_path):
        got = resolved(monkeypatch, "imgclf.acquire.scrape.scrape",
                       ["scrape", "--items", "shirt", "--attributes", "striped", "--config", str(f), *args],
                       pick=lambda items, attributes, folder, *a, **k: folder)
        assert Path(got) == folder, args


def test_dedup(monkeypatch, tmp_path):
    f = _acquire_file(tmp_path, **{"data.duplicate_distance": 3})
    target = "imgclf.acquire.dedup.dedup_dataset"
    for args, folder in _dataset_cases(tmp_path):
        got = resolved(monkeypatch, target, ["dedup", "--config", str(f), *args], pick=lambda folder, *a, **k: folder)
        assert Path(got) == folder, args
    distance = lambda folder, distance, **k: distance  # noqa: E731
    base = ["dedup", "--config", str(f), "--images", str(tmp_path)]
    assert resolved(monkeypatch, target, base, pick=distance) == 3  # the file beats the default
    assert resolved(monkeypatch, target, [*base, "--distance", "5"], pick=distance) == 5  # --distance beats the file
    assert resolved(monkeypatch, target, [*base, "--distance", "5", *sets("data.duplicate_distance=7")], pick=distance) == 7


# ---------------------------------------------------------------- steps of an existing run: its saved config is the base

@pytest.mark.parametrize("step, target", [("featurize", "imgclf.pipeline.steps.featurize"), ("train", "imgclf.pipeline.steps.train"),
                                          ("evaluate", "imgclf.pipeline.steps.evaluate"), ("doctor", "imgclf.pipeline.steps.doctor"),
                                          ("suggest", "imgclf.pipeline.steps.suggest")])
def test_run_dir_steps_keep_the_saved_config(monkeypatch, prepared, cfg_file, step, target):
    cfg = resolved(monkeypatch, target, [step, "--run-dir", str(prepared), "--config", str(cfg_file), *sets(*SET)])
    assert _pick(cfg, _expect(SAVED)) == _expect(SAVED)
    assert cfg.tracking.enabled is False and cfg.data.images == RunDir(prepared).saved_config().data.images
    # without --config and --set the saved config comes back unchanged
    assert resolved(monkeypatch, target, [step, "--run-dir", str(prepared)]) == RunDir(prepared).saved_config()


def test_train_saves_the_merged_config(trained_run, tmp_path, cfg_file):
    """The old bug, end to end: `train --config` on an existing run kept only the file's settings."""
    rd = tmp_path / "run"
    shutil.copytree(trained_run, rd)
    saved = RunDir(rd).saved_config()
    write_toml(cfg_file, {"svm.max_iter": 5000})
    assert main(["train", "--run-dir", str(rd), "--config", str(cfg_file), *sets("svm.cv_folds=2")]) == 0
    after = RunDir(rd).saved_config()
    assert (after.svm.max_iter, after.svm.cv_folds) == (5000, 2)
    assert after.data == saved.data and after.tracking == saved.tracking and after.svm.c_values == saved.svm.c_values


@pytest.mark.parametrize("how", ["--run-dir", "--resume"])
def test_refine(monkeypatch, prepared, cfg_file, tmp_path, how):
    flag, set_images = tmp_path / "flag_images", tmp_path / "set_images"
    write_toml(cfg_file, {**FILE, "data.images": str(tmp_path / "file_images")})
    argv = ["refine", how, str(prepared), "--config", str(cfg_file), "--no-evaluate", "-q"]
    cfg = resolved(monkeypatch, "imgclf.train.dnn.refine", argv + sets(*SET))
    assert _pick(cfg, _expect(SAVED)) == _expect(SAVED)
    assert cfg.data.images == str(tmp_path / "file_images")  # the file beats the saved config
    cfg = resolved(monkeypatch, "imgclf.train.dnn.refine", [*argv, "--images", str(flag)])
    assert cfg.data.images == str(flag.resolve())  # --images beats the file
    cfg = resolved(monkeypatch, "imgclf.train.dnn.refine", [*argv, "--images", str(flag), *sets(f"data.images={json.dumps(str(set_images))}")])
    assert cfg.data.images == str(set_images)  # --set beats --images


# ---------------------------------------------------------------- commands that load a bundle: its engine is the base

def test_predict(monkeypatch, bundle, cfg_file):
    write_toml(cfg_file, {**FILE, "engine.threads": 5, "engine.calibration_images": 7})
    engine = resolved(monkeypatch, "imgclf.inference.predict.Predictor", ["predict", str(bundle), str(bundle), "--config", str(cfg_file)],
                      pick=lambda model, engine, predict_cfg: engine)
    assert (engine.precision, engine.threads, engine.calibration_images) == ("int8", 5, 7)  # bundle kept; file beats it
    engine = resolved(monkeypatch, "imgclf.inference.predict.Predictor",
                      ["predict", str(bundle), str(bundle), "--config", str(cfg_file), *sets("engine.threads=6")],
                      pick=lambda model, engine, predict_cfg: engine)
    assert (engine.precision, engine.threads, engine.calibration_images) == ("int8", 6, 7)  # --set beats the file
    predict = resolved(monkeypatch, "imgclf.inference.predict.Predictor",
                       ["predict", str(bundle), str(bundle), *sets("predict.min_confidence=0.5", "predict.reject_unknown=false")],
                       pick=lambda model, engine, predict_cfg: predict_cfg)
    assert (predict.min_confidence, predict.reject_unknown, predict.unknown_tpr) == (0.5, False, 0.95)


def test_explain(monkeypatch, bundle, cfg_file, tmp_path):
    write_toml(cfg_file, {**FILE, "engine.threads": 5})
    argv = ["explain", str(bundle), str(bundle), "--out", str(tmp_path / "maps"), "--config", str(cfg_file)]
    engine = resolved(monkeypatch, "imgclf.inference.predict.Predictor", argv, pick=lambda model, engine, **kw: engine)
    assert (engine.precision, engine.threads) == ("int8", 5)  # bundle kept; file beats it
    engine = resolved(monkeypatch, "imgclf.inference.predict.Predictor", argv + sets("engine.threads=6"), pick=lambda model, engine, **kw: engine)
    assert (engine.precision, engine.threads) == ("int8", 6)  # --set beats the file


def test_serve(monkeypatch, bundle, cfg_file):
    write_toml(cfg_file, {**FILE, "engine.threads": 5, "serve.host": "127.0.0.2", "serve.port": 8101, "serve.max_batch_size": 4})
    cfg = resolved(monkeypatch, "imgclf.serve.server.serve_bundle",
                   ["serve", str(bundle), "--config", str(cfg_file), "--host", "127.0.0.3", "--port", "8102",
                    *sets("serve.host=127.0.0.4")], pick=lambda bundle, cfg, **kw: (cfg, kw["engine_cfg"]))
    cfg, engine = cfg
    assert _pick(cfg, _expect(None)) == {**_expect(None), "svm.cv_folds": 3}  # serve refuses a --set of svm.* (SET)
    assert (cfg.engine.precision, cfg.engine.threads) == ("int8", 5) and engine == cfg.engine  # bundle kept; file beats it
    assert (cfg.serve.max_batch_size, cfg.serve.port, cfg.serve.host) == (4, 8102, "127.0.0.4")  # file, flag, --set


def test_bundle_config_and_step_config_directly(prepared, bundle, cfg_file, tmp_path):
    """The two resolving functions the commands above share, called as the commands call them."""
    from imgclf.cli.pipeline import bundle_config, step_config

    cfg = bundle_config(bundle, cfg_file, ["serve.port=9"], ["serve.port=8", "serve.host=h"], command="serve",
                        sections=("serve", "engine"))
    assert (cfg.engine.precision, cfg.engine.threads, cfg.serve.port, cfg.serve.host) == ("int8", 3, 9, "h")
    cfg = step_config(prepared, cfg_file, SET, tmp_path)
    assert _pick(cfg, _expect(SAVED)) == _expect(SAVED) and cfg.data.images == str(tmp_path.resolve())
    assert step_config(tmp_path / "not_a_run", None, None) == load_config()  # no run yet: the defaults
