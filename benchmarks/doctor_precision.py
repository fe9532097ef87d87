"""Data-doctor precision on real data: how many of the top label findings a person judged real errors.

    python benchmarks/doctor_precision.py DATA_DIR WORK_DIR JUDGED_CSV [--top 20 50] [--list 50] [--json out.json]
        [--rank self_confidence|margin|alternative] [--knn-agree] [--prune none|noise_rate|both|net]
        [--also NAME@RES ... [--combine agree|mean] [--agree N]] [--flip] [--whole] [--set KEY=VALUE ...]

``DATA_DIR`` is an images folder (prepared and featurized once under ``WORK_DIR`` by imgclf, the same
way as ``doctor.py``: efficientnet_lite0 at 224 px, the default preset's features). The doctor
(``imgclf.doctor.examine``, the default ``[doctor]`` settings) ranks the label findings exactly as
label_issues.csv and the Review view do; the script then reads ``JUDGED_CSV`` (columns ``path``
relative to ``DATA_DIR``, ``given``, ``suggested``, ``judgement``: ``error`` (a real label error),
``hard`` (hard but correctly labelled) or ``ambiguous``: judgements of the given label, whatever
the suggestion; ``note``) and reports, for the top 20 and
top 50 findings, how many were judged real errors, hard, ambiguous, or are not judged yet (those are
listed, so that a changed ranking's new paths can be looked at and judged). ``--whole`` also ranks every
image by the doctor's self-confidence, listed or not, and reports where the judged real errors fall.

Variants of the list, to measure what the field suggests against the same judgements:

- ``--rank margin`` orders the findings by the normalised margin (out-of-fold probability of the given
  label minus the largest other one); ``--rank alternative`` by the probability of the suggested class,
  highest first (how sure the models are of the alternative, rather than how unsure of the label);
- ``--knn-agree`` keeps only the findings whose 10 nearest images (feature cosine, all splits) carry
  the suggested label more often than the given one;
- ``--prune noise_rate`` replaces the doctor's cut by confident learning's prune-by-noise-rate: for
  each pair (given i, true j) of the calibrated confident joint, its estimated count of images
  labelled i with the largest margin p_j - p_i; ``--prune both`` takes them only among the images the
  confident joint counted in cell (i, j); ``--prune net`` counts each cell net of its reverse cell
  (j, i), so that two classes confused both ways (overlapping definitions rather than errors) are
  listed less; all ranked by self-confidence;
- ``--also NAME@RES`` (repeatable) examines the set again with each other featurizer, alone, each
  with its own out-of-fold probabilities; ``--combine agree`` (default) lists only the images that
  the doctors of at least ``--agree`` (default 2) of the models list, ``--combine mean`` averages
  the models' probabilities and cuts as the doctor does; both rank by the mean self-confidence;
- ``--flip`` featurizes every image and its mirror image and averages the two (test-time
  augmentation) before the doctor examines them;
- ``--set`` featurizes with other settings first (e.g. richer features:
  ``--set 'model.featurizers=["efficientnet_lite1@256", "efficientnet_lite2@288"]'``).
"""
from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

from datasets import prepared

JUDGEMENTS = ("error", "hard", "ambiguous")


def loaded(images: str, work: Path, overrides: list[str], flip: bool = False):
    """(config, images) of ``images`` featurized with ``overrides``, the features flip-averaged with ``flip``."""
    from imgclf.doctor.step import load_images
    from imgclf.features.engines import FlipAveraged
    from imgclf.features.featurize import featurize_paths
    from imgclf.features.step import feature_cache_dir, run_featurizer
    from imgclf.rundir.layout import RunDir

    cfg, rd = prepared(images, work, overrides)
    data = load_images(cfg, RunDir(rd))
    if flip:  # the same files the run featurized, so every one reads again
        engine = FlipAveraged(run_featurizer(cfg, RunDir(rd)))
        data.features = featurize_paths(data.paths, engine, cache_dir=feature_cache_dir(cfg), batch_size=cfg.featurize.batch_size,
                                        threads=cfg.engine.threads, progress=False).features
    return cfg, data


def examined(images: str, work: Path, overrides: list[str], flip: bool = False):
    """(images, classes, the doctor's findings) of ``images`` featurized with ``overrides`` (flip-averaged with ``flip``)."""
    from imgclf.doctor.examine import examine

    cfg, data = loaded(images, work, overrides, flip)
    classes = sorted(set(data.labels))
    found = examine(data, classes, cfg.doctor, input_size=cfg.model.resolution,
                    max_distance=cfg.data.duplicate_distance, seed=cfg.data.seed)
    return data, classes, found


def rank_key(proba, y, rank: str):
    """(N,) suspicion of every image's label, lowest first: its self-confidence, its normalised ``margin`` (p of the
    label minus the largest other p), or minus the probability of the ``alternative`` (the most likely other class)."""
    import numpy as np

    rows = np.arange(len(y))
    others = proba.copy()
    others[rows, y] = -1.0
    if rank == "self_confidence":
        return proba[rows, y]
    return proba[rows, y] - others.max(axis=1) if rank == "margin" else -others.max(axis=1)


def featurizer_overrides(spec: str) -> list[str]:
    """``NAME@RES`` → the settings that make it the run's only featurizer."""
    name, _, res = spec.partition("@")
    return [f'model.backbone="{name}"'] + ([f"model.resolution={int(res)}"] if res else [])


def doctor_cut(proba, y):
    """Indices the doctor lists on ``proba``: the lowest self-confidences, as many as the confident joint estimates errors."""
    import numpy as np

    from imgclf.doctor.labels import confident_joint, least_confident

    _, _, joint = confident_joint(proba, y, proba.shape[1])
    return np.flatnonzero(least_confident(proba[np.arange(len(y)), y], joint.sum() - np.trace(joint)))


def pruned(proba, y, how: str) -> list[int]:
    """Confident learning's prune-by-noise-rate (``noise_rate``), within the confident joint's cells (``both``),
    or with each cell's count net of its reverse cell (``net``): see the module docstring."""
    import numpy as np

    from imgclf.doctor.labels import confident_joint

    k = proba.shape[1]
    _, column, joint = confident_joint(proba, y, k)
    out: set[int] = set()
    for i in range(k):
        members = np.flatnonzero(y == i)
        for j in range(k):
            if i == j:
                continue
            take = int(round(max(0.0, joint[i, j] - (joint[j, i] if how == "net" else 0.0))))
            pool = members[column[members] == j] if how == "both" else members
            out.update(pool[np.argsort(proba[pool, i] - proba[pool, j], kind="stable")[:take]].tolist())
    return sorted(out)


def ranked_findings(images: str, work: Path, overrides: list[str], rank: str = "self_confidence", knn_agree: bool = False,
                    prune: str = "none", also: list[str] = (), combine: str = "agree", agree: int = 2,
                    flip: bool = False) -> list[dict]:
    """The label findings of ``images``, worst first, each with ``rel`` relative to the images folder: the doctor's
    own list, or the variant the arguments name (see the module docstring)."""
    import numpy as np

    from imgclf.util.arrays import l2_normalize

    data, classes, found = examined(images, work, overrides, flip)
    row = {p: i for i, p in enumerate(data.paths)}
    y = np.array([classes.index(lb) for lb in data.labels])
    proba = found.proba
    findings = found.label_issues

    def rows(idx) -> list[dict]:
        sc = proba[np.arange(len(y)), y]
        others = proba.copy()
        others[np.arange(len(y)), y] = -1.0
        return [{"path": data.paths[i], "given_label": classes[y[i]], "suggested_label": classes[int(others[i].argmax())],
                 "score": round(float(sc[i]), 6)} for i in sorted((int(i) for i in idx), key=lambda i: (sc[i], i))]

    if also:
        runs = [examined(images, work, [*overrides, *featurizer_overrides(s)], flip) for s in also]
        if any(d.paths != data.paths for d, _, _ in runs):
            raise SystemExit(f"{images}: the featurizers {also} did not read the same images")
        models = [found] + [f for _, _, f in runs]
        proba = np.mean([m.proba for m in models], axis=0)
        if combine == "agree":
            votes = Counter(r["path"] for m in models for r in m.label_issues)
            findings = rows(row[p] for p, v in votes.items() if v >= agree)
        else:
            findings = rows(doctor_cut(proba, y))
    if prune != "none":
        findings = rows(pruned(proba, y, prune))
    if rank != "self_confidence":
        key = rank_key(proba, y, rank)
        findings = sorted(findings, key=lambda r: key[row[r["path"]]])
    if knn_agree:
        x = l2_normalize(np.asarray(data.features, dtype=np.float64))
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        near = np.argsort(-sim, axis=1)[:, :10]
        votes = lambda i, label: int((y[near[i]] == classes.index(label)).sum())  # noqa: E731
        findings = [r for r in findings if votes(row[r["path"]], r["suggested_label"]) > votes(row[r["path"]], r["given_label"])]
    root = Path(images).resolve()
    return [{**r, "rel": Path(r["path"]).resolve().relative_to(root).as_posix()} for r in findings]


def read_judged(path: Path) -> dict[str, dict[str, str]]:
    """rel path → its judged row; a judgement outside :data:`JUDGEMENTS` is an error naming the row."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for n, r in enumerate(rows, 2):
        if r["judgement"] not in JUDGEMENTS:
            raise SystemExit(f"{path}:{n}: judgement must be one of {', '.join(JUDGEMENTS)}; got {r['judgement']!r}")
    return {r["path"]: r for r in rows}


def score(findings: list[dict], judged: dict[str, dict[str, str]], tops: list[int]) -> dict:
    """Counts of each judgement among the top ``k`` findings. A judgement is of the image's given label (is it
    wrong?), so it holds whatever class a variant suggests."""
    out = {}
    for k in tops:
        counts = Counter()
        unjudged = []
        for r in findings[:k]:
            j = judged.get(r["rel"])
            if j is None or j["given"] != r["given_label"]:
                counts["unjudged"] += 1
                unjudged.append(r["rel"])
            else:
                counts[j["judgement"]] += 1
        out[k] = {"findings": min(k, len(findings)), **{c: counts[c] for c in (*JUDGEMENTS, "unjudged")}, "unjudged_paths": unjudged}
    return out


def whole_ranking(images: str, work: Path, overrides: list[str], judged: dict[str, dict[str, str]], flip: bool = False) -> dict:
    """Where the judged real errors rank among ALL images by the doctor's self-confidence, listed or not, and the
    AUROC of self-confidence for them against every other image and against the images judged hard."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    data, _, found = examined(images, work, overrides, flip)
    root = Path(images).resolve()
    rels = [Path(p).resolve().relative_to(root).as_posix() for p in data.paths]
    verdict = np.array([judged[r]["judgement"] if r in judged and judged[r]["given"] == lb else "" for r, lb in zip(rels, data.labels)])
    sc = found.self_confidence
    rank = np.empty(len(sc), dtype=int)
    rank[np.argsort(sc, kind="stable")] = np.arange(1, len(sc) + 1)
    err, hard = verdict == "error", verdict == "hard"
    auroc = (lambda m: round(float(roc_auc_score(err[m], -sc[m])), 3) if err[m].any() and not err[m].all() else None)  # noqa: E731
    return {"images": len(sc), "error_ranks": sorted(rank[err].tolist()), "auroc_vs_rest": auroc(np.ones(len(sc), bool)),
            "auroc_vs_hard": auroc(err | hard)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="images folder")
    ap.add_argument("work", type=Path, help="folder for the run directory and the feature cache (kept)")
    ap.add_argument("judged", type=Path, help="CSV of judged findings: path, given, suggested, judgement, note")
    ap.add_argument("--top", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--list", type=int, default=0, help="also print the top N findings with their judgement")
    ap.add_argument("--rank", choices=["self_confidence", "margin", "alternative"], default="self_confidence")
    ap.add_argument("--knn-agree", action="store_true", help="only findings whose nearest images vote for the suggestion")
    ap.add_argument("--prune", choices=["none", "noise_rate", "both", "net"], default="none",
                    help="confident learning's prune-by-noise-rate cut instead of the doctor's")
    ap.add_argument("--also", action="append", default=[], metavar="NAME@RES",
                    help="another featurizer whose own out-of-fold probabilities join in (repeatable)")
    ap.add_argument("--combine", choices=["agree", "mean"], default="agree", help="how --also models combine")
    ap.add_argument("--agree", type=int, default=2, help="with --combine agree: how many models' doctors must list an image")
    ap.add_argument("--flip", action="store_true", help="features averaged with the mirror image's")
    ap.add_argument("--whole", action="store_true",
                    help="also rank ALL images by the doctor's self-confidence: the judged real errors' ranks and AUROC")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="a setting, section.key=value (repeatable)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    findings = ranked_findings(args.images, args.work, args.overrides, args.rank, args.knn_agree, args.prune, args.also,
                               args.combine, args.agree, args.flip)
    judged = read_judged(args.judged)
    for n, r in enumerate(findings[: args.list], 1):
        j = judged.get(r["rel"], {})
        print(f"{n:3d} {r['rel']} {r['given_label']} -> {r['suggested_label']} score {r['score']} "
              f"[{j.get('judgement', 'UNJUDGED')}] {j.get('note', '')}")
    result = score(findings, judged, args.top)
    print(f"{Path(args.images).name}: {len(findings)} label findings")
    for k, c in result.items():
        print(f"  top {k}: {c['error']} of {c['findings']} judged real errors, {c['hard']} hard but correct, "
              f"{c['ambiguous']} ambiguous, {c['unjudged']} not judged" + (f" ({', '.join(c['unjudged_paths'])})" if c["unjudged"] else ""))
    whole = whole_ranking(args.images, args.work, args.overrides, judged, args.flip) if args.whole else None
    if whole:
        print(f"  all {whole['images']} images by self-confidence: judged real errors at ranks {whole['error_ranks']}; "
              f"AUROC {whole['auroc_vs_rest']} against the other images, {whole['auroc_vs_hard']} against those judged hard")
    if args.json:
        args.json.write_text(json.dumps({"set": Path(args.images).name, "findings": len(findings), "top": result, "whole": whole},
                                        indent=1))


if __name__ == "__main__":
    main()
