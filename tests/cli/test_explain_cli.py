"""`imgclf explain`: overlay PNGs for the predicted and the true class; unusable images listed, not fatal."""
import json
from pathlib import Path

import numpy as np
import pytest
from datagen import make_image
from PIL import Image

from imgclf.cli import main


def test_explain_writes_overlay_pngs(trained_run: Path, tmp_path: Path, capsys):
    images = trained_run.parent / "images"
    stripes = sorted((images / "stripes").glob("*.jpg"))[0]
    circles = sorted((images / "circles").glob("*.jpg"))[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "maps"
    assert main(["explain", str(trained_run / "model"), str(stripes), str(circles), str(bad), "--out", str(out),
                 "--class", "squares", "--size", "200", "--set", "engine.backend=onnxruntime", "--set", "engine.precision=fp32"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [str(stripes), str(circles), str(bad)]
    assert "error" in rows[2] and not (out / "bad.squares.png").exists()
    for r, true in zip(rows[:2], ("stripes", "circles")):
        top = r.get("nearest_label", r["label"])  # predict's answer may be "unknown": the map is of the nearest class
        assert set(r["maps"]) == {top, "squares", true}  # predicted, asked, and the folder's class
        for cls, png in r["maps"].items():
            assert Path(png).name == f"{Path(r['path']).stem}.{cls}.png"
            img = Image.open(png)
            assert img.format == "PNG" and img.mode == "RGB" and max(img.size) <= 200
            a = np.asarray(img, dtype=np.int16)
            assert a.std() > 5  # a picture, not a blank
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for r in rows[:2] for p in r["maps"].values())


def _far_png(path: Path) -> Path:
    """A smooth colour gradient: nothing like the generated circles, squares and stripes."""
    ramp = np.linspace(0, 255, 224, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (224, 1)), np.full((224, 224), 90.0)], -1)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def test_explain_answers_what_predict_answers_unknown_included(trained_run: Path, tmp_path: Path, capsys):
    known = tmp_path / "circle.jpg"
    make_image("circles", np.random.default_rng(5)).save(known, quality=90)
    far = _far_png(tmp_path / "far.png")
    engine = ["--set", "engine.backend=onnxruntime", "--set", "engine.precision=fp32"]
    assert main(["predict", str(trained_run / "model"), str(known), str(far), *engine]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["explain", str(trained_run / "model"), str(known), str(far), "--out", str(tmp_path / "maps"), *engine]) == 0
    explained = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert predicted[1]["label"] == "unknown" and predicted[0]["label"] == "circles"
    for p, e in zip(predicted, explained):
        assert set(e) == set(p) | {"maps"} and e["label"] == p["label"] and e["unknown"] == p["unknown"]
        assert e["ood_score"] == pytest.approx(p["ood_score"], abs=1e-3)
        assert e["scores"] == pytest.approx(p["scores"], abs=1e-3)
    assert list(explained[1]["maps"]) == [explained[1]["nearest_label"]]  # an unknown image maps its nearest class
