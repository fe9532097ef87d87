"""Pictures in a notebook: the HTML a fitted classifier, an evaluation, the doctor's findings and a class
activation map show themselves as (``_repr_html_``). Self-contained HTML: thumbnails are inline PNGs,
every text is escaped."""
from __future__ import annotations

import base64
import html
from typing import Any, Sequence

import numpy as np

from ..data.images import safe_thumbnail
from ..inference.explain import Explanation, png_bytes
from ..util.errors import ImageError

THUMB = 96  # thumbnail side (pixels)
WORST = 8  # test errors shown


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{100 * float(v):.1f}%"


def thumb_tag(source: Any, caption: str = "") -> str:
    """An inline thumbnail of an image file or bytes (a grey box when it cannot be decoded)."""
    try:
        uri = "data:image/png;base64," + base64.b64encode(png_bytes(safe_thumbnail(source, THUMB))).decode("ascii")
        img = f'<img src="{uri}" alt="{escape(caption)}" style="width:{THUMB}px;height:{THUMB}px;object-fit:contain">'
    except (ImageError, OSError):
        img = f'<div style="width:{THUMB}px;height:{THUMB}px;background:#ddd" title="unreadable"></div>'
    return (f'<figure style="display:inline-block;margin:4px;text-align:center;vertical-align:top">{img}'
            f'<figcaption style="font-size:11px;max-width:{THUMB + 20}px;overflow-wrap:anywhere">{escape(caption)}</figcaption></figure>')


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def confusion_html(cm: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """The confusion matrix, rows = true class, columns = predicted, cells shaded by the row's share."""
    cells = []
    for i, row in enumerate(cm):
        total = max(1, sum(row))
        tds = []
        for j, v in enumerate(row):
            share = v / total
            colour = f"rgba(31,119,180,{share:.2f})" if i == j else f"rgba(214,39,40,{share:.2f})"
            ink = "#fff" if share > 0.5 else "#000"
            tds.append(f'<td style="background:{colour};color:{ink};text-align:right">{v}</td>')
        cells.append(f"<tr><th>{escape(labels[i])}</th>{''.join(tds)}</tr>")
    head = "".join(f"<th>{escape(lbl)}</th>" for lbl in labels)
    return (f"<table><caption>confusion matrix (rows: true class, columns: predicted)</caption>"
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table>")


def per_class_rows(m: dict[str, Any]) -> list[list[Any]]:
    labels = m.get("labels") or list(m.get("per_class_accuracy", {}))
    get = lambda key, c: (m.get(key) or {}).get(c)  # noqa: E731
    return [[c, get("per_class_support", c), _pct(get("per_class_precision", c)), _pct(get("per_class_recall", c)),
             _pct(get("per_class_f1", c))] for c in labels]


def metrics_html(m: dict[str, Any]) -> str:
    ece = ((m.get("calibration") or {}).get("after") or {}).get("ece")
    line = (f"<p><b>accuracy {_pct(m.get('accuracy'))}</b>, class-averaged {_pct(m.get('class_avg_accuracy'))} "
            f"on {escape(m.get('n_test'))} test images" + (f", ECE {ece:.3f}" if isinstance(ece, (int, float)) else "") + "</p>")
    per_class = table(per_class_rows(m), ["class", "images", "precision", "recall", "F1"])
    cm = confusion_html(m["confusion_matrix"], m["labels"]) if m.get("confusion_matrix") and m.get("labels") else ""
    return f'{line}<div style="display:flex;gap:24px;flex-wrap:wrap">{per_class}{cm}</div>'


def classifier_html(clf: Any) -> str:
    """A fitted classifier: its classes, test metrics, per-class table, confusion matrix and worst test errors."""
    m = clf.metrics_ or {}
    where = f"run {escape(clf.run_dir_)}" if clf.run_dir_ is not None else f"bundle {escape(clf.bundle_dir_)}"
    out = [f"<div><h3>ImageClassifier — {len(clf.classes_)} classes ({escape(', '.join(clf.classes_))})</h3>",
           f"<p>preset {escape(clf.preset)}; {where}</p>"]
    if m.get("confusion_matrix"):
        out.append(metrics_html(m))
    if clf.run_dir_ is not None:
        from ..rundir.layout import RunDir

        rd = RunDir(clf.run_dir_)
        if rd.predictions.exists():
            errors = [r for r in rd.read_predictions(clf.classes_) if r["label"] != r["predicted"]]
            errors.sort(key=lambda r: -r["score"])
            if errors:
                out.append(f"<p>the {min(WORST, len(errors))} most confident test errors of {len(errors)}:</p><div>")
                out.extend(thumb_tag(r["path"], f"{r['label']} → {r['predicted']} ({100 * r['score']:.0f}%)") for r in errors[:WORST])
                out.append("</div>")
    out.append("</div>")
    return "".join(out)


class Evaluation(dict):
    """:meth:`ImageClassifier.evaluate`'s result: the metrics as a dict, and DataFrames ``per_class``,
    ``confusion`` and ``predictions`` (one row per image: label, predicted, score, then each class's probability)."""

    def __init__(self, metrics: dict[str, Any], names: list[str], labels: list[str], proba: np.ndarray, classes: list[str]):
        super().__init__(metrics)
        self._names, self._labels, self._proba, self._classes = names, labels, proba, classes

    @property
    def per_class(self) -> Any:
        import pandas as pd

        rows = per_class_rows(self)
        df = pd.DataFrame([[r[0], r[1], *(self.get(k, {}).get(r[0]) for k in ("per_class_precision", "per_class_recall", "per_class_f1"))]
                           for r in rows], columns=["class", "images", "precision", "recall", "f1"])
        return df.set_index("class")

    @property
    def confusion(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self["confusion_matrix"], index=pd.Index(self["labels"], name="true"),
                            columns=pd.Index(self["labels"], name="predicted"))

    @property
    def predictions(self) -> Any:
        import pandas as pd

        pred = [self._classes[i] for i in self._proba.argmax(axis=1)] if len(self._proba) else []
        df = pd.DataFrame({"image": self._names, "label": self._labels, "predicted": pred,
                           "score": self._proba.max(axis=1) if len(self._proba) else []})
        for j, c in enumerate(self._classes):
            df[f"p_{c}"] = self._proba[:, j]
        return df

    def _repr_html_(self) -> str:
        out = [metrics_html(self)]
        wrong = [(n, lbl, self._classes[int(np.argmax(p))], float(np.max(p)))
                 for n, lbl, p in zip(self._names, self._labels, self._proba) if self._classes[int(np.argmax(p))] != lbl]
        wrong.sort(key=lambda w: -w[3])
        if wrong:
            out.append(f"<p>the {min(WORST, len(wrong))} most confident errors of {len(wrong)}:</p><div>")
            out.extend(thumb_tag(n, f"{lbl} → {pred} ({100 * s:.0f}%)") for n, lbl, pred, s in wrong[:WORST] if not n.startswith("<"))
            out.append("</div>")
        return "".join(out)


class Findings:
    """The data doctor's findings: DataFrames ``label_issues`` (given and suggested label, score, reason),
    ``outliers`` and ``duplicates``, worst first."""

    def __init__(self, label_issues: list[dict[str, str]], outliers: list[dict[str, str]], duplicates: list[dict[str, str]]):
        import pandas as pd

        self.label_issues = pd.DataFrame(label_issues)
        self.outliers = pd.DataFrame(outliers)
        self.duplicates = pd.DataFrame(duplicates)

    def __repr__(self) -> str:
        return (f"Findings({len(self.label_issues)} suspected label errors, {len(self.outliers)} outliers, "
                f"{len(self.duplicates)} near-duplicate pairs)")

    def _repr_html_(self) -> str:
        out = [f"<p>{escape(repr(self))}</p>"]
        if len(self.label_issues):
            out.append("<p>suspected label errors (given → suggested):</p><div>")
            out.extend(thumb_tag(r["path"], f"{r['given_label']} → {r['suggested_label']}")
                       for r in self.label_issues.head(WORST * 2).to_dict("records"))
            out.append("</div>")
        if len(self.outliers):
            out.append("<p>outliers:</p><div>")
            out.extend(thumb_tag(r["path"], r["label"]) for r in self.outliers.head(WORST).to_dict("records"))
            out.append("</div>")
        return "".join(out)


class ExplanationView:
    """One image's class activation maps with the prediction as ``imgclf predict`` makes it (``label`` may be
    "unknown" or "uncertain"); shows the map of each explained class over the image in a notebook."""

    def __init__(self, name: str, explanation: Explanation, decided: dict[str, Any]):
        self.name, self.explanation, self.decided = name, explanation, decided

    @property
    def label(self) -> str:
        return self.decided["label"]

    @property
    def classes(self) -> list[str]:
        return list(self.explanation.maps)

    def overlay(self, cls: str | None = None, size: int | None = 256) -> Any:
        """The PIL image of ``cls``'s map (default: the most likely known class) over the image."""
        return self.explanation.overlay(cls, size)

    def to_dict(self) -> dict[str, Any]:
        return {**self.explanation.to_dict(), **{k: v for k, v in self.decided.items() if k != "image"}}

    def __repr__(self) -> str:
        return f"ExplanationView({self.name!r}, label={self.label!r}, maps of {', '.join(self.classes)})"

    def _repr_html_(self) -> str:
        figs = []
        for cls in self.classes:
            uri = "data:image/png;base64," + base64.b64encode(png_bytes(self.overlay(cls, 192))).decode("ascii")
            figs.append(f'<figure style="display:inline-block;margin:4px;text-align:center"><img src="{uri}" alt="{escape(cls)}">'
                        f"<figcaption>where it sees {escape(cls)}</figcaption></figure>")
        score = self.decided.get("score")
        head = f"<p>{escape(self.name)}: <b>{escape(self.label)}</b>" + (f" ({100 * score:.1f}%)" if isinstance(score, float) else "") + "</p>"
        return head + "".join(figs)
