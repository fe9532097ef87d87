"""The dataset page's Review view: the data doctor's findings of a run, worst first, one per image.

Findings come from the run's label_issues.csv, duplicates.csv and outliers.csv (written by
``imgclf doctor`` or ``imgclf run``). Each image with findings becomes one item: what was found,
the label it has, what the doctor suggests (a class, or ``exclude`` for an outlier or a redundant
copy) and the nearest train images of the given and of the suggested class, from features.npz.
Items are addressed by their dataset path, and acted on through the :class:`Catalog` (so every
decision lands in annotations.csv, with its history): ``accept`` applies the suggestion, ``keep``
confirms the label (the doctor then stops listing the image), ``exclude`` leaves it out; several
items at once are one correction (one undo takes them all back).

Each item says how sure the doctor is: for a suspected label, the out-of-fold probabilities of the
given and the suggested class (oof_predictions.csv) and how many of the image's nearest train images
carry each label; for a pair, its similarity; for an outlier, its distance against the threshold.
Findings on images a person decided on in an earlier review (decided_findings.csv) are listed too,
marked ``decided``: the view hides them unless asked.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..data.annotations import new_batch_id
from ..rundir.layout import RunDir
from ..util.errors import InvalidRequest, NotFound
from ..util.files import read_csv
from .catalog import Catalog

NEIGHBOURS = 4  # nearest train images shown per class
VOTERS = 10  # nearest train images whose labels are counted for a suspected label
ACTIONS = ("accept", "keep", "exclude")
_ORDER = {"label_issue": 0, "cross_class_duplicate": 1, "leak": 2, "outlier": 3, "duplicate": 4}
#: The filter types of the view: what each kind of finding is filed under.
TYPES = {"label_issue": "label", "cross_class_duplicate": "label", "leak": "leakage", "duplicate": "duplicate",
         "outlier": "outlier"}
_DECIDED_KIND = {"label": "label_issue", "outlier": "outlier", "duplicate": "duplicate", "leakage": "leak"}


class Review:
    """The doctor's findings of one run directory over one dataset, reloaded when they change."""

    def __init__(self, run_dir: str | os.PathLike, catalog: Catalog):
        self.rd = RunDir(Path(run_dir).resolve())
        self.catalog = catalog
        self._items: list[dict[str, Any]] = []
        self._stamp: tuple[int, ...] | None = None
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        files = (self.rd.label_issues, self.rd.outliers, self.rd.duplicates)
        missing = [p.name for p in files if not p.exists()]
        if missing:
            raise NotFound(f"the run {self.rd.root} has no {', '.join(missing)}: the data doctor has not run on it; "
                           f"run `imgclf doctor --run-dir {self.rd.root}`", reason="no_findings")
        stamp = tuple(p.stat().st_mtime_ns for p in files)
        with self._lock:
            if stamp != self._stamp:
                self._items, self._stamp = self._build(), stamp
            return self._items

    def _build(self) -> list[dict[str, Any]]:
        issues, outliers, duplicates = self.rd.read_findings()
        items: dict[str, dict[str, Any]] = {}

        def add(path: str, run_rel: str, label: str, split: str, finding: dict[str, Any], suggestion: str, score: float) -> None:
            rel = self.catalog.match([(path, run_rel)])[0]
            if rel is None:  # no longer in the dataset (moved away): nothing to act on
                return
            item = items.setdefault(rel, {"path": rel, "file": path, "given": label, "split": split, "suggestion": suggestion,
                                          "score": score, "findings": []})
            item["findings"].append(finding)
            if _ORDER[finding["kind"]] < _ORDER[item["findings"][0]["kind"]]:
                item["findings"].insert(0, item["findings"].pop())
                item["suggestion"], item["score"] = suggestion, score

        for r in issues:
            kind = "cross_class_duplicate" if r["reason"] == "cross_class_duplicate" else "label_issue"
            add(r["path"], r["rel"], r["given_label"], r["split"], {"kind": kind, "rank": int(r["rank"]), "p_given": float(r["score"])},
                r["suggested_label"], float(r["score"]))
        for r in duplicates:
            # the copy to act on: the test image of a leak, else the second of the pair
            b_side = r["split_b"] == "test" or r["split_a"] != "test"
            path, rel, label, split, twin = ((r["path_b"], r["rel_b"], r["label_b"], r["split_b"], r["rel_a"]) if b_side
                                             else (r["path_a"], r["rel_a"], r["label_a"], r["split_a"], r["rel_b"]))
            kind = "leak" if r["leak"] == "1" else "duplicate"
            if r["kind"] == "cross_class":
                kind = "cross_class_duplicate"
            add(path, rel, label, split, {"kind": kind, "twin": twin, "cosine": _num(r["cosine"]),
                                     "dhash_distance": _num(r["dhash_distance"])}, "exclude", -1.0)
        for r in outliers:
            add(r["path"], r["rel"], r["label"], r["split"], {"kind": "outlier", "distance": float(r["distance"]),
                                                     "threshold": float(r["threshold"])}, "exclude", -float(r["distance"]))
        open_items = set(items)
        for r in read_csv(self.rd.decided_findings) if self.rd.decided_findings.exists() else []:
            add(r["path"], r["rel"], r["given_label"], r["split"], {"kind": _DECIDED_KIND[r["kind"]], "decision": r["decision"]},
                r["suggested_label"], 1.0)
        for rel, it in items.items():
            it["types"] = sorted({TYPES[f["kind"]] for f in it["findings"]})
            it["decided"] = "" if rel in open_items else it["findings"][0]["decision"]
        ordered = sorted(items.values(), key=lambda it: (bool(it["decided"]), _ORDER[it["findings"][0]["kind"]], it["score"], it["path"]))
        self._add_oof(ordered)
        self._add_neighbours(ordered)
        return ordered

    def _add_oof(self, items: list[dict[str, Any]]) -> None:
        """The out-of-fold probabilities of the given and the suggested class on every label finding."""
        if not self.rd.oof_predictions.exists():
            return
        _, rows = self.rd.read_oof_predictions()
        scores = {r["path"]: r["scores"] for r in rows}
        for it in items:
            p = scores.get(it["file"])
            for f in it["findings"]:
                if p is not None and f["kind"] in ("label_issue", "cross_class_duplicate"):
                    f["p_given"] = round(p.get(it["given"], 0.0), 6)
                    f["p_suggested"] = round(p.get(it["suggestion"], 0.0), 6)

    def _add_neighbours(self, items: list[dict[str, Any]]) -> None:
        """The nearest train images of the given and of the suggested class, by feature cosine."""
        if not items or not self.rd.features.exists():
            for it in items:
                it["neighbours"] = {}
            return
        index, feats, ok, _ = self.rd.load_features()
        train = [r for r in self.rd.split_rows("train") if r.path in index and ok[index[r.path]]]
        x = feats[[index[r.path] for r in train]].astype(np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        labels = np.array([r.label for r in train])
        for it in items:
            it["neighbours"] = {}
            if it["file"] not in index:
                continue
            q = feats[index[it["file"]]].astype(np.float32)
            sim = x @ (q / max(float(np.linalg.norm(q)), 1e-12))
            voters = [i for i in np.argsort(-sim)[: VOTERS + 1] if train[i].path != it["file"]][:VOTERS]
            it["votes"] = {"of": len(voters), "given": int(sum(labels[i] == it["given"] for i in voters)),
                           "suggested": int(sum(labels[i] == it["suggestion"] for i in voters))}
            for cls in dict.fromkeys([it["given"], it["suggestion"]]):
                if cls == "exclude":
                    continue
                members = [i for i in np.flatnonzero(labels == cls) if train[i].path != it["file"]]
                best = sorted(members, key=lambda i: -sim[i])[:NEIGHBOURS]
                it["neighbours"][cls] = [rel for rel in self.catalog.match([(train[i].path, train[i].rel) for i in best]) if rel]

    def payload(self) -> dict[str, Any]:
        """Every item, worst first, with the image's current state in the dataset."""
        items = self._load()
        views = self.catalog.views([it["path"] for it in items])
        return {"run": str(self.rd.root), "classes": self.catalog.classes(),
                "items": [{**{k: v for k, v in it.items() if k != "file"}, "item": views.get(it["path"])} for it in items]}

    def act(self, rel: str, action: str) -> dict[str, Any]:
        """Apply ``accept`` (the suggestion), ``keep`` (confirm the label) or ``exclude`` to the item at ``rel``."""
        return self.act_many([rel], action)["items"][0]

    def act_many(self, rels: list[str], action: str) -> dict[str, Any]:
        """:meth:`act` on several items as one correction; ``{"items": views (in the order of rels), "changed": n}``."""
        if action not in ACTIONS:
            raise InvalidRequest(f"review action must be one of {', '.join(ACTIONS)}; got {action!r}")
        if not rels:
            raise InvalidRequest("review paths must name at least one finding; got none")
        found = {it["path"]: it for it in self._load()}
        missing = [rel for rel in rels if rel not in found]
        if missing:
            raise NotFound(f"no finding for {missing[0]!r} in the run {self.rd.root}; reload the Review view")
        groups: dict[tuple[str, str], list[str]] = {}  # (catalog action, label) -> images
        for rel in dict.fromkeys(rels):
            suggestion = found[rel]["suggestion"]
            if action == "exclude" or (action == "accept" and suggestion == "exclude"):
                groups.setdefault(("exclude", ""), []).append(rel)
            elif action == "keep":
                groups.setdefault(("keep", ""), []).append(rel)
            elif suggestion == self.catalog.resolve(rel).original:  # back to the folder's label, and confirmed
                groups.setdefault(("restore", ""), []).append(rel)
                groups.setdefault(("keep", ""), []).append(rel)
            else:
                groups.setdefault(("relabel", suggestion), []).append(rel)
        batch = new_batch_id()
        views: dict[str, dict[str, Any]] = {}
        changed: set[str] = set()
        for (what, label), members in groups.items():
            done = self.catalog.annotate_many(members, what, label, batch=batch)
            for view in done["items"]:
                if view["changed"]:
                    changed.add(view["path"])
                views[view["path"]] = {**view, "changed": view["path"] in changed}
        return {"items": [views[rel] for rel in dict.fromkeys(rels)], "changed": len(changed)}


def _num(v: str) -> float | None:
    return float(v) if v not in ("", None) else None
