"""`imgclf explain`: overlay PNGs for the predicted and the true class; unusable images listed, not fatal."""
import json
from pathlib import Path

import numpy as np
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
        assert set(r["maps"]) == {r["label"], "squares", true}  # predicted, asked, and the folder's class
        for cls, png in r["maps"].items():
            assert Path(png).name == f"{Path(r['path']).stem}.{cls}.png"
            img = Image.open(png)
            assert img.format == "PNG" and img.mode == "RGB" and max(img.size) <= 200
            a = np.asarray(img, dtype=np.int16)
            assert a.std() > 5  # a picture, not a blank
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for r in rows[:2] for p in r["maps"].values())
