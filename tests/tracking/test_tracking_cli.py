"""``imgclf runs list/show/compare`` on a real store holding two tracked runs."""
from __future__ import annotations

import json

import pytest
from tracking_helpers import run_id_of
from typer.testing import CliRunner

from imgclf.cli import app, main


def _runs(tracked, *args: str) -> str:
    r = CliRunner().invoke(app, ["runs", *args, "--set", f"tracking.uri={json.dumps(tracked.uri)}"])
    assert r.exit_code == 0, r.output
    return r.stdout


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_runs_list_shows_both_runs_newest_first(tracked):
    a, b = run_id_of(tracked.runs["svm_a"]), run_id_of(tracked.runs["svm_b"])
    rows = json.loads(_runs(tracked, "list", "--json"))
    assert [r["run_id"] for r in rows] == [b, a]
    assert [r["metrics"]["accuracy"] for r in rows] == [_metrics(tracked.runs[n])["accuracy"] for n in ("svm_b", "svm_a")]
    table = _runs(tracked, "list")
    assert a[:8] in table and b[:8] in table and "2 run(s)" in table
    header, first = table.splitlines()[:2]
    assert header.split()[3] == "DATASET" and first.split()[4] == "images"  # the date takes two words
    assert table.splitlines()[-1].startswith("data folder: /")
    assert f"mlflow ui --backend-store-uri {tracked.uri}" in table


def test_runs_list_filters_by_dataset(tracked):
    assert len(json.loads(_runs(tracked, "list", "--dataset", "images", "--json"))) == 2
    assert json.loads(_runs(tracked, "list", "--dataset", "elsewhere", "--json")) == []
    assert "no tracked runs" in _runs(tracked, "list", "--dataset", "elsewhere")


@pytest.mark.parametrize("kind", ["id", "prefix", "name", "run_dir"])
def test_runs_show_accepts_an_id_a_prefix_a_name_or_a_run_dir(tracked, kind):
    rd = tracked.runs["svm_b"]
    rid = run_id_of(rd)
    ref = {"id": rid, "prefix": rid[:7], "name": "svm_b", "run_dir": str(rd)}[kind]
    shown = json.loads(_runs(tracked, "show", ref, "--json"))
    assert shown["run_id"] == rid and shown["params"]["svm.c_values"] == "[0.001]"
    assert shown["metrics"]["class_avg_accuracy"] == pytest.approx(_metrics(rd)["class_avg_accuracy"])
    assert {"roc.png", "confusion_matrix.png", "report.html", "metrics.json", "model/"} <= set(shown["artifacts"])
    text = _runs(tracked, "show", ref)
    assert rid in text and "per_class_accuracy.circles" in text and "svm.l2_normalize" in text


def test_runs_compare_shows_differing_params_and_every_metric(tracked):
    ma, mb = _metrics(tracked.runs["svm_a"]), _metrics(tracked.runs["svm_b"])
    cmp = json.loads(_runs(tracked, "compare", str(tracked.runs["svm_a"]), str(tracked.runs["svm_b"]), "--json"))
    assert cmp["params"]["svm.c_values"] == ["[0.01, 1.0, 100.0]", "[0.001]"]
    assert cmp["params"]["svm.l2_normalize"] == ["true", "false"]
    assert not {"model.backbone", "data.seed", "svm.cv_folds"} & cmp["params"].keys()  # equal params stay out
    assert cmp["metrics"]["accuracy"] == pytest.approx([ma["accuracy"], mb["accuracy"]])
    for label in ma["labels"]:
        assert cmp["metrics"][f"per_class_accuracy.{label}"] == pytest.approx([ma["per_class_accuracy"][label], mb["per_class_accuracy"][label]])
        assert cmp["metrics"][f"roc_auc.{label}"] == pytest.approx([ma["roc_auc"][label], mb["roc_auc"][label]])

    lines = _runs(tracked, "compare", run_id_of(tracked.runs["svm_a"])[:6], "svm_b").splitlines()
    row = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ")}
    assert row["svm.l2_normalize"] == ["true", "false"]
    assert row["accuracy"][:2] == [f"{ma['accuracy']:.4f}", f"{mb['accuracy']:.4f}"]
    assert row["accuracy"][2] == f"{mb['accuracy'] - ma['accuracy']:+.4f}"
    assert row["roc_auc.stripes"][:2] == [f"{ma['roc_auc']['stripes']:.4f}", f"{mb['roc_auc']['stripes']:.4f}"]
    assert "[0.01, 1.0, 100.0]" in "\n".join(lines) and "Δ B−A" in lines[0]
    assert [line.split()[1:3] for line in lines if line.startswith("preset ")] == [["fast", "fast"]]


@pytest.mark.parametrize("args, words", [
    (["runs", "show", "no-such-run"], ["no tracked run matches 'no-such-run'", "hint:"]),
    (["runs", "compare", "svm_a"], ["at least two runs"]),
])
def test_runs_errors_are_one_line_and_a_hint(tracked, capsys, args, words):
    assert main([*args, "--set", f"tracking.uri={json.dumps(tracked.uri)}"]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err


def test_runs_list_without_a_store_says_so_and_creates_none(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["runs", "list", "--set", f"data.root={json.dumps(str(tmp_path))}"]) == 2
    assert "no tracking store" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_runs_show_of_an_untracked_run_dir_says_so(trained_run, tracked, capsys):
    assert main(["runs", "show", str(trained_run), "--set", f"tracking.uri={json.dumps(tracked.uri)}"]) == 2
    assert "never tracked" in capsys.readouterr().err


def test_runs_help_lists_its_commands(capsys):
    assert main(["runs", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("list", "show", "compare"))
