"""Class activation maps on real photos: exactness, cost against a prediction, featurization untouched.

    python benchmarks/explain.py --images DIR --work W [--n 40] [--json out.json]

In ONE run, on the set's first ``--n`` test images, an SVM head fit on its train features, and each of
ONNX Runtime fp32 and OpenVINO at the default precision (bf16 on CPUs with bf16):
  (a) predict: decode + preprocess + pooled features of one image + head, ms per image (median);
  (b) explain: decode + preprocess + feature map + maps of the predicted class (Explainer.explain), and
      the 512-px overlay PNG, ms per image (median), and the ratio (b)/(a);
  (c) exactness: max |mean(map) + bias - decision value| over every image and class, the decision value
      computed by the predict path from the engine's pooled output;
  (d) featurization: images/s of ``run`` on batches of 32 of two engines of the same featurizer, one that
      never loaded the map output and one that did, interleaved (7 rounds, medians): the map runs in a
      session of its own, so the ratio should be 1 within noise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import prepared  # noqa: E402


def _median_ms(fn, items) -> float:
    times = []
    for it in items:
        t0 = time.perf_counter()
        fn(it)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _throughputs(engines, batch: np.ndarray, rounds: int = 7) -> list[float]:
    """Median images/s of each engine's ``run`` on ``batch``, the engines taking turns (load swings hit both)."""
    for e in engines:
        e.run(batch)  # warm
    rates: list[list[float]] = [[] for _ in engines]
    for _ in range(rounds):
        for e, r in zip(engines, rates):
            t0 = time.perf_counter()
            e.run(batch)
            r.append(len(batch) / (time.perf_counter() - t0))
    return [statistics.median(r) for r in rates]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", required=True, help="images folder (one subfolder per class), or 'demo'")
    ap.add_argument("--work", type=Path, required=True, help="folder for run directories and the caches (kept)")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from imgclf.classifier.svm import SvmClassifier
    from imgclf.config.settings import EngineConfig
    from imgclf.features.featurize import build_featurizer
    from imgclf.features.preprocess import load_and_preprocess
    from imgclf.features.step import engine_cache_dir
    from imgclf.inference.explain import Explainer, class_maps
    from imgclf.rundir.layout import RunDir

    cfg, rd = prepared(args.images, args.work)
    rdir = RunDir(rd)
    rows, x = rdir.split_features("train")
    labels = sorted({r.label for r in rows})
    svm = SvmClassifier.from_config(cfg.svm, cfg.data.seed).fit(x, np.array([labels.index(r.label) for r in rows]))
    test = [r.path for r in rdir.split_rows("test")][: args.n]
    data = [Path(p).read_bytes() for p in test]
    out: dict[str, dict] = {}
    for name, ecfg in (("onnxruntime fp32", EngineConfig(backend="onnxruntime", precision="fp32", threads=cfg.engine.threads)),
                       ("openvino default", EngineConfig(backend="openvino", precision="auto", threads=cfg.engine.threads))):
        engine = build_featurizer(cfg.model, ecfg, cache_dir=engine_cache_dir(cfg))
        spec = engine.spec
        batch = np.stack([load_and_preprocess(d, spec) for d in data[:32]])
        explainer = Explainer(engine, svm.head_, labels, spec)

        def predict(d: bytes) -> None:
            svm.head_.predict_proba(engine.run(load_and_preprocess(d, spec)[None]))

        for d in data[:3]:  # warm both paths (the map session loads on first use)
            predict(d)
            explainer.explain(d)
        predict_ms = _median_ms(predict, data)
        explain_ms = _median_ms(explainer.explain, data)
        explanations = [explainer.explain(d) for d in data]
        overlay_ms = _median_ms(lambda e: e.overlay_png(size=512), explanations)
        plain = build_featurizer(cfg.model, ecfg, cache_dir=engine_cache_dir(cfg))  # never asked for maps
        before, after = _throughputs([plain, engine], batch)
        inputs = np.stack([load_and_preprocess(d, spec) for d in data])
        maps = np.concatenate([explainer.feature_maps(inputs[i:i + 16]) for i in range(0, len(inputs), 16)])
        decision = svm.head_.decision_function(np.concatenate([engine.run(inputs[i:i + 16]) for i in range(0, len(inputs), 16)]))
        err = max(float(np.abs(class_maps(m, svm.head_, range(len(labels))).mean(axis=(1, 2)) + svm.head_.bias - d).max())
                  for m, d in zip(maps, decision))
        same = float(np.mean([e.label == labels[int(np.argmax(d))] for e, d in zip(explanations, decision)]))
        out[f"{name} ({engine.feature_id.rsplit('-', 1)[-1]})"] = {
            "predict_ms": round(predict_ms, 2), "explain_ms": round(explain_ms, 2), "ratio": round(explain_ms / predict_ms, 2),
            "overlay_png_ms": round(overlay_ms, 2), "max_abs_error": err, "same_label": same, "grid": list(maps.shape[2:]),
            "featurize_img_s_plain": round(before, 1), "featurize_img_s_with_maps": round(after, 1),
            "featurize_ratio": round(after / before, 3)}
        print(name, json.dumps(out[list(out)[-1]]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
