"""prepare reports near-duplicate train/test pairs; data.group_duplicates keeps each group on one side."""
from pathlib import Path

from datagen import make_dataset, tiny_config
from PIL import Image

from imgclf.pipeline.steps import prepare
from imgclf.util.files import read_csv


def _with_duplicates(root: Path) -> list[tuple[str, str]]:
    images = make_dataset(root, n_per_class=10, seed=11)
    pairs = []
    for cls in ("circles", "squares", "stripes"):
        for i in range(4):
            src = images / cls / f"{cls}_{i:03d}.jpg"
            dup = images / cls / f"copy_{i}.jpg"
            Image.open(src).resize((80, 80)).save(dup, quality=70)  # resized and re-encoded
            pairs.append((str(src.resolve()), str(dup.resolve())))
    return pairs


def _sides(run_dir: Path) -> dict[str, str]:
    return {r["path"]: r["split"] for r in read_csv(run_dir / "split.csv")}


def test_leakage_is_reported_and_grouping_prevents_it(tmp_path):
    pairs = _with_duplicates(tmp_path / "images")
    # tiny noisy images move further under resizing than photos do (measured 17-33 bits here)
    cfg = tiny_config(tmp_path / "data", tmp_path / "images", "data.duplicate_distance=48")
    s = prepare(cfg, tmp_path / "plain")
    side = _sides(tmp_path / "plain")
    straddling = {tuple(sorted(p)) for p in pairs if side[p[0]] != side[p[1]]}
    reported = {tuple(sorted((r["train_path"], r["test_path"]))) for r in read_csv(tmp_path / "plain" / "leakage.csv")}
    assert straddling, "with 12 duplicate pairs some straddle the split by chance (seed fixed)"
    assert straddling <= reported and s["leakage"] == len(reported)
    assert s["duplicate_groups"] == len(pairs)  # distinct images (>100 bits apart) never group

    grouped = tiny_config(tmp_path / "data", tmp_path / "images", "data.group_duplicates=true", "data.duplicate_distance=48")
    s = prepare(grouped, tmp_path / "grouped")
    side = _sides(tmp_path / "grouped")
    assert all(side[a] == side[b] for a, b in pairs)
    assert s["leakage"] == 0 and read_csv(tmp_path / "grouped" / "leakage.csv") == []


def test_leakage_check_can_be_turned_off(tmp_path):
    _with_duplicates(tmp_path / "images")
    cfg = tiny_config(tmp_path / "data", tmp_path / "images", "data.check_leakage=false")
    s = prepare(cfg, tmp_path / "rd")
    assert "leakage" not in s and not (tmp_path / "rd" / "leakage.csv").exists()
