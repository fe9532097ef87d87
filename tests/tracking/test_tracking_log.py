"""What a tracked run holds in a real MLflow store: params, metrics, tags, artifacts, steps."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tracking_helpers import client, fresh_store, run_id_of, track_config

from imgclf.config.settings import flatten
from imgclf.tracking.store import log_run, metric_values


def _git(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", ["svm_a", "svm_b"])
def test_run_logs_params_metrics_tags_and_artifacts(tracked, name):
    rd, cfg = tracked.runs[name], tracked.configs[name]
    c = client(tracked.uri)
    run = c.get_run(run_id_of(rd))
    metrics = json.loads((rd / "metrics.json").read_text())

    assert c.get_experiment(run.info.experiment_id).name == "images"  # named after the dataset folder
    assert run.info.status == "FINISHED" and run.info.run_name == name
    for key, value in flatten(cfg).items():
        if key != "data.dataset":  # not a param of a run on data.images (see the test below)
            assert run.data.params[key] == (value if isinstance(value, str) else json.dumps(value)), key
    assert run.data.params["classifier.type"] == "svm"
    assert float(run.data.params["classifier.C"]) in cfg.svm.c_values

    m = run.data.metrics
    assert m["accuracy"] == pytest.approx(metrics["accuracy"])
    assert m["class_avg_accuracy"] == pytest.approx(metrics["class_avg_accuracy"])
    assert m["macro_auc"] == pytest.approx(metrics["macro_auc"])
    assert m["n_test"] == metrics["n_test"] and m["n_train"] == metrics["n_train"] == 36
    for label in metrics["labels"]:
        assert m[f"per_class_accuracy.{label}"] == pytest.approx(metrics["per_class_accuracy"][label])
        assert m[f"roc_auc.{label}"] == pytest.approx(metrics["roc_auc"][label])

    t = run.data.tags
    assert (t["dataset"], t["classifier"], t["backbone"], t["command"]) == ("images", "svm", "efficientnet_lite0", "run")
    assert t["run_dir"] == str(rd.resolve())
    if _git("rev-parse", "HEAD").returncode == 0:  # the tests run in the project's checkout
        assert _git("merge-base", "--is-ancestor", t["git_commit"], "HEAD").returncode == 0  # HEAD may have moved since

    top = {f.path for f in c.list_artifacts(run.info.run_id)}
    assert {"roc.png", "confusion_matrix.png", "report.html", "metrics.json", "config.json", "model"} <= top
    assert {"model/bundle.json", "model/head.npz", "model/manifest.json"} <= {f.path for f in c.list_artifacts(run.info.run_id, "model")}
    local = Path(c.download_artifacts(run.info.run_id, "metrics.json", str(tracked.db.parent / f"dl_{name}")))
    assert local.read_bytes() == (rd / "metrics.json").read_bytes()
    # Artifacts of a SQLite store sit beside the database, not in the cwd's ./mlruns.
    assert (tracked.db.parent / "mlartifacts" / run.info.run_id / "artifacts" / "roc.png").is_file()


def test_the_two_runs_differ_in_their_svm_params(tracked):
    c = client(tracked.uri)
    a, b = (c.get_run(run_id_of(tracked.runs[n])).data.params for n in ("svm_a", "svm_b"))
    differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert {"svm.c_values", "svm.l2_normalize"} <= differing
    assert (a["svm.c_values"], b["svm.c_values"]) == ("[0.01, 1.0, 100.0]", "[0.001]")
    assert not differing & {"model.backbone", "data.seed", "data.images"}


def test_default_store_is_sqlite_in_the_data_root(run_copy, tmp_path, monkeypatch, trained_run, store_template):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "data"
    fresh_store(store_template, root / "mlruns.db")
    run_id = log_run(track_config(root, trained_run.parent / "images"), run_copy, "evaluate")
    assert run_id and run_id == run_id_of(run_copy)
    assert (root / "mlruns.db").is_file()
    assert (root / "mlartifacts" / run_id / "artifacts" / "model" / "bundle.json").is_file()
    assert client(f"sqlite:///{root / 'mlruns.db'}").get_run(run_id).data.tags["command"] == "evaluate"


def test_env_selects_the_store_and_tracking_uri_overrides_it(run_copy, tmp_path, monkeypatch, trained_run, store_template):
    env_db, cfg_db = tmp_path / "env" / "env.db", tmp_path / "cfg" / "cfg.db"
    fresh_store(store_template, env_db)
    fresh_store(store_template, cfg_db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{env_db}")
    root = tmp_path / "data"
    rid = log_run(track_config(root, trained_run.parent / "images"), run_copy, "run")
    assert not (root / "mlruns.db").exists()
    assert client(f"sqlite:///{env_db}").get_run(rid).info.run_id == rid
    rid2 = log_run(track_config(root, trained_run.parent / "images", f'tracking.uri="sqlite:///{cfg_db}"'), run_copy, "run")
    assert rid2 != rid  # another store: a new run there
    assert client(f"sqlite:///{cfg_db}").get_run(rid2).data.metrics["accuracy"] > 0


@pytest.mark.slow
def test_git_commit_tag_names_the_working_dirs_commit(run_copy, tmp_path, monkeypatch, trained_run, store_template):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"]):
        assert _git(*args, cwd=repo).returncode == 0
    head = _git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    root = tmp_path / "data"
    uri = fresh_store(store_template, root / "mlruns.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(repo)
    tags = client(uri).get_run(log_run(track_config(root, trained_run.parent / "images"), run_copy, "run")).data.tags
    assert (tags["git_commit"], tags["mlflow.source.git.commit"], tags["git_dirty"]) == (head, head, "false")
    monkeypatch.chdir(tmp_path)  # not a repository: no commit to name
    tags = client(uri).get_run(log_run(track_config(root, trained_run.parent / "images", "svm.c_values=[2.0]"), run_copy, "run")).data.tags
    assert "git_commit" not in tags and tags["dataset"] == "images"


def test_train_then_evaluate_add_to_one_run_and_a_new_config_starts_another(run_copy, tmp_path, trained_run, monkeypatch,
                                                                            store_template):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root, images = tmp_path / "data", trained_run.parent / "images"
    fresh_store(store_template, root / "mlruns.db")
    c = client(f"sqlite:///{root / 'mlruns.db'}")
    cfg = track_config(root, images)
    rid = log_run(cfg, run_copy, "train")
    after_train = c.get_run(rid)
    assert "accuracy" not in after_train.data.metrics  # train logs the model, not (stale) test metrics
    assert after_train.data.params["classifier.type"] == "svm" and after_train.data.tags["command"] == "train"
    assert log_run(cfg, run_copy, "evaluate") == rid
    after_eval = c.get_run(rid)
    assert after_eval.data.tags["command"] == "train" and after_eval.data.metrics["accuracy"] > 0  # the command that made it
    assert after_eval.data.tags["commands"] == "train, evaluate"
    changed = track_config(root, images, "svm.c_values=[5.0]")
    rid2 = log_run(changed, run_copy, "evaluate")
    assert rid2 != rid and c.get_run(rid2).data.params["svm.c_values"] == "[5.0]"
    record = json.loads((run_copy / "tracking.json").read_text())
    assert record["run_id"] == rid2 and record["previous_run_ids"] == [rid] and record["status"] == "logged"


@pytest.mark.parametrize("history", [
    [{"epoch": 1, "train_error": 0.5, "val_error": 0.6}, {"epoch": 2, "train_error": 0.25, "val_error": 0.4},
     {"epoch": 3, "train_error": 0.125, "val_error": 0.3}],
    {"train_error": [0.5, 0.25, 0.125], "val_error": [0.6, 0.4, 0.3]},
])
def test_training_history_becomes_stepped_metrics(run_copy, tmp_path, trained_run, history, monkeypatch, store_template):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    metrics = json.loads((run_copy / "metrics.json").read_text())
    metrics["training_history"] = history  # as evaluate copies it from a refined bundle
    (run_copy / "metrics.json").write_text(json.dumps(metrics))
    root = tmp_path / "data"
    fresh_store(store_template, root / "mlruns.db")
    cfg = track_config(root, trained_run.parent / "images")
    rid = log_run(cfg, run_copy, "evaluate")
    assert log_run(cfg, run_copy, "evaluate") == rid  # logged again: the curve must not double
    c = client(f"sqlite:///{root / 'mlruns.db'}")
    val = [(m.step, m.value) for m in sorted(c.get_metric_history(rid, "val_error"), key=lambda m: m.step)]
    train = [(m.step, m.value) for m in sorted(c.get_metric_history(rid, "train_error"), key=lambda m: m.step)]
    assert val == [(1, 0.6), (2, 0.4), (3, 0.3)]
    assert train == [(1, 0.5), (2, 0.25), (3, 0.125)]


def test_metric_names_are_sanitized_and_never_collide():
    got = metric_values({
        "accuracy": 0.75, "n_test": 8, "resolution": 224, "labels": ["a+b", "a*b"],
        "per_class_accuracy": {"a+b": 0.5, "a*b": 1.0, "ça/va": 0.25},
        "roc_auc": {"a+b": None, "a*b": 0.9},  # None: AUC undefined for a class without positives
        "classifier": {"type": "svm", "C": 1.0}, "steps": {"prepare": {"images": 3}},
    })
    assert got == {"accuracy": 0.75, "n_test": 8.0, "per_class_accuracy.a_b": 0.5, "per_class_accuracy.a_b_2": 1.0,
                   "per_class_accuracy.ça_va": 0.25, "roc_auc.a_b_2": 0.9}


def test_a_later_command_keeps_the_runs_command_and_unused_settings_are_not_params(run_copy, tmp_path, trained_run,
                                                                                   monkeypatch, store_template):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "data"
    uri = fresh_store(store_template, root / "mlruns.db")
    cfg = track_config(root, trained_run.parent / "images")
    rid = log_run(cfg, run_copy, "run")
    assert log_run(cfg, run_copy, "doctor") == rid
    run = client(uri).get_run(rid)
    assert (run.data.tags["command"], run.data.tags["commands"], run.data.tags["dataset"]) == ("run", "run, doctor", "images")
    assert run.data.tags["mlflow.source.name"] == "imgclf run"
    assert "data.dataset" not in run.data.params  # data.images named the folder: "demo" played no part
    assert run.data.params["data.images"] == str(trained_run.parent / "images")
    named = client(uri).get_run(log_run(track_config(root, trained_run.parent / "images", "data.images=\"\""), run_copy, "run"))
    assert named.data.params["data.dataset"] == "demo"
