"""Ray stays out of every process that does not ask for it; without the extra, --ray says how to install it."""
from __future__ import annotations

import subprocess
import sys

import pytest
from datagen import make_dataset

# the CLI run, then whether anything imported Ray
_RAY_IMPORTED = ("import sys; from imgclf.cli import main; rc = main(sys.argv[1:]); "
                 "print('ray imported:', any(m == 'ray' or m.startswith('ray.') for m in sys.modules)); sys.exit(rc)")


def _run(script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_without_the_extra_ray_says_how_to_install_it_in_one_line(trained_run, tmp_path, monkeypatch, capsys):
    from imgclf.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # Ray unimportable: what an install without the extra gives
    images = make_dataset(tmp_path / "images", n_per_class=1)
    for args in (["predict", trained_run / "model", images, "--ray", "--out", tmp_path / "p.jsonl"],
                 ["featurize", "--run-dir", trained_run, "--ray-address", "auto"]):
        assert main([str(a) for a in args]) == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-2:] == ["error: Ray Data is not installed (import of ray halted; None in sys.modules)",
                                         "hint: install the extra: pip install 'imgclf[ray]'"], err
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.slow
def test_predict_without_ray_never_imports_it(trained_run, tmp_path):
    """A fresh interpreter: imgclf and its CLI imported, a local predict run, and still no module of Ray loaded."""
    images = make_dataset(tmp_path / "images", n_per_class=1)
    done = _run(_RAY_IMPORTED, "predict", trained_run / "model", images)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"label"') == 3 and done.stdout.rstrip().endswith("ray imported: False")


def test_out_and_actors_without_ray_are_refused(trained_run, tmp_path, capsys):
    from imgclf.cli import main

    assert main(["predict", str(trained_run / "model"), str(tmp_path), "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "error: --out goes with --ray, which was not given" in capsys.readouterr().err


@pytest.mark.slow  # Ray Client gives up after 30 s
def test_a_cluster_that_does_not_answer_is_named_in_one_error(trained_run, tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=1)
    done = subprocess.run([sys.executable, "-m", "imgclf", "predict", str(trained_run / "model"), str(images),
                           "--ray-address", "ray://127.0.0.1:9", "--out", str(tmp_path / "p.jsonl")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("error: no Ray cluster answers at ray://127.0.0.1:9: ") for line in lines), done.stderr
    assert "hint: start one with `ray start --head` (then --ray-address auto), or give --ray alone for a local instance" in lines
    assert "Traceback" not in done.stderr
