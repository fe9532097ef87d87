"""Data-doctor precision on real data: how many of the top label findings a person judged real errors.

    python benchmarks/doctor_precision.py DATA_DIR WORK_DIR JUDGED_CSV [--top 20 50] [--list 50] [--json out.json]
        [--rank self_confidence|margin] [--knn-agree] [--set KEY=VALUE ...]

``DATA_DIR`` is an images folder (prepared and featurized once under ``WORK_DIR`` by imgclf, the same
way as ``doctor.py``: efficientnet_lite0 at 224 px, the default preset's features). The doctor
(``imgclf.doctor.examine``, the default ``[doctor]`` settings) ranks the label findings exactly as
label_issues.csv and the Review view do; the script then reads ``JUDGED_CSV`` (columns ``path``
relative to ``DATA_DIR``, ``given``, ``suggested``, ``judgement``: ``error`` (a real label error),
``hard`` (hard but correctly labelled) or ``ambiguous``: judgements of the given label, whatever
the suggestion; ``note``) and reports, for the top 20 and
top 50 findings, how many were judged real errors, hard, ambiguous, or are not judged yet (those are
listed, so that a changed ranking's new paths can be looked at and judged).

Variants of the list, to measure what the field suggests against the same judgements: ``--rank
margin`` orders the findings by the normalised margin (out-of-fold probability of the given label
minus the largest other one) instead of self-confidence; ``--knn-agree`` keeps only the findings
whose 10 nearest images (feature cosine, all splits) carry the suggested label more often than the
given one; ``--set`` featurizes with other settings first (e.g. richer features:
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


def ranked_findings(images: str, work: Path, overrides: list[str], rank: str = "self_confidence",
                    knn_agree: bool = False) -> list[dict]:
    """The doctor's label findings of ``images``, worst first, each with ``rel`` relative to the images folder."""
    import numpy as np

    from imgclf.doctor.examine import examine
    from imgclf.doctor.step import load_images
    from imgclf.rundir.layout import RunDir
    from imgclf.util.arrays import l2_normalize

    cfg, rd = prepared(images, work, overrides)
    data = load_images(cfg, RunDir(rd))
    classes = sorted(set(data.labels))
    found = examine(data, classes, cfg.doctor, input_size=cfg.model.resolution,
                    max_distance=cfg.data.duplicate_distance, seed=cfg.data.seed)
    row = {p: i for i, p in enumerate(data.paths)}
    y = np.array([classes.index(lb) for lb in data.labels])
    findings = found.label_issues
    if rank == "margin":
        others = found.proba.copy()
        others[np.arange(len(y)), y] = -1.0
        margin = found.self_confidence - others.max(axis=1)
        findings = sorted(findings, key=lambda r: margin[row[r["path"]]])
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="images folder")
    ap.add_argument("work", type=Path, help="folder for the run directory and the feature cache (kept)")
    ap.add_argument("judged", type=Path, help="CSV of judged findings: path, given, suggested, judgement, note")
    ap.add_argument("--top", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--list", type=int, default=0, help="also print the top N findings with their judgement")
    ap.add_argument("--rank", choices=["self_confidence", "margin"], default="self_confidence")
    ap.add_argument("--knn-agree", action="store_true", help="only findings whose nearest images vote for the suggestion")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="a setting, section.key=value (repeatable)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    findings = ranked_findings(args.images, args.work, args.overrides, args.rank, args.knn_agree)
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
    if args.json:
        args.json.write_text(json.dumps({"set": Path(args.images).name, "findings": len(findings), "top": result}, indent=1))


if __name__ == "__main__":
    main()
